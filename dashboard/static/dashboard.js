// The local live dashboard. It knows nothing of coinstream's cards: it fetches the dashboard spec
// (/api/spec, from metabase/dashboards/*.yaml) and draws what it says, Metabase's way: tables,
// scalars, line/bar/combo charts from visualization_settings, on Metabase's 24-column grid. On top,
// the candlestick chart of the chosen timeframe (spec.live.candlestick) with its moving average.
// Data arrives as server-sent events (/api/stream): a snapshot of every card for the chosen coin
// and timeframe, again whenever it changes.
//
// For tests and tools the rendered state is in the DOM: #candles carries data-state
// (waiting|empty|ready|error), data-coin, data-timeframe, data-candle-count and data-overlay-count
// (counted from the plotted traces); every table cell carries data-column and data-value.
"use strict";

(() => {
  const state = { spec: null, coin: "", timeframe: "", events: null, snapshot: null };
  const byId = (id) => document.getElementById(id);
  const PLOT_CONFIG = { displaylogo: false, responsive: true,
                        modeBarButtonsToRemove: ["lasso2d", "select2d"] };
  const COLORS = ["#2563eb", "#f59e0b", "#10b981", "#8b5cf6", "#ef4444", "#0ea5e9"];

  // ---- formatting ---------------------------------------------------------------------------

  function columnSettings(card, column) {
    const all = (card.visualization || {}).column_settings || {};
    return all[JSON.stringify(["name", column])] || {};
  }

  function formatNumber(value, settings) {
    const options = {};
    if (settings.decimals !== undefined) {
      options.minimumFractionDigits = settings.decimals;
      options.maximumFractionDigits = settings.decimals;
    } else if (Math.abs(value) > 0 && Math.abs(value) < 1) {
      options.maximumSignificantDigits = 6;
    } else if (settings.number_style === "currency") {
      options.minimumFractionDigits = 2;
      options.maximumFractionDigits = 2;
    } else {
      options.maximumFractionDigits = 4;
    }
    if (settings.number_style === "currency") {
      options.style = "currency";
      options.currency = settings.currency || "USD";
    }
    return (settings.prefix || "") + value.toLocaleString("en-US", options) + (settings.suffix || "");
  }

  function formatValue(card, column, value) {
    if (value === null || value === undefined) return "—";
    if (typeof value === "number") return formatNumber(value, columnSettings(card, column));
    return String(value);
  }

  function columnTitle(card, column) {
    const settings = columnSettings(card, column);
    if (settings.column_title) return settings.column_title;
    return column.replace(/_pct$/, " %").replace(/_/g, " ");
  }

  function seriesTitle(card, metric) {
    const settings = ((card.visualization || {}).series_settings || {})[metric] || {};
    return settings.title || columnTitle(card, metric);
  }

  // ---- page skeleton from the spec ----------------------------------------------------------

  function timeframeSourceCards() {
    return new Set(state.spec.live.candlestick.timeframes.map((t) => t.card));
  }

  function buildGrid() {
    const grid = byId("grid");
    const skip = timeframeSourceCards();
    const cards = state.spec.cards.filter((card) => !skip.has(card.key));
    cards.sort((a, b) => a.layout.row - b.layout.row || a.layout.col - b.layout.col);
    for (const card of cards) {
      const panel = document.createElement("section");
      panel.className = "panel";
      panel.dataset.card = card.key;
      panel.dataset.display = card.display;
      panel.dataset.state = "waiting";
      panel.style.gridColumn = `span ${card.layout.size_x}`;
      panel.style.gridRow = `span ${card.layout.size_y}`;
      const title = document.createElement("h2");
      title.textContent = card.name;
      title.title = card.description || "";
      const body = document.createElement("div");
      body.className = card.display === "table" || card.display === "scalar" ? "body" : "chart";
      const empty = document.createElement("p");
      empty.className = "empty";
      empty.textContent = "Waiting for data…";
      panel.append(title, body, empty);
      grid.append(panel);
    }
  }

  function buildSelectors() {
    const select = byId("timeframe");
    for (const timeframe of state.spec.live.candlestick.timeframes) {
      const option = document.createElement("option");
      option.value = option.textContent = timeframe.label;
      select.append(option);
    }
    select.value = state.timeframe;
    select.addEventListener("change", () => { state.timeframe = select.value; reconnect(); });
    const coin = byId("coin");
    coin.addEventListener("change", () => { state.coin = coin.value; reconnect(); });
    setCoinOptions([]);
  }

  function setCoinOptions(codes) {
    const select = byId("coin");
    const wanted = Array.from(new Set([...codes, state.coin])).filter(Boolean).sort();
    const current = Array.from(select.options).map((option) => option.value);
    if (current.join(",") !== wanted.join(",")) {
      select.replaceChildren(...wanted.map((code) => {
        const option = document.createElement("option");
        option.value = option.textContent = code;
        return option;
      }));
    }
    select.value = state.coin;
  }

  // ---- live data ----------------------------------------------------------------------------

  function reconnect() {
    const query = new URLSearchParams({ coin: state.coin, timeframe: state.timeframe });
    history.replaceState(null, "", `?${query}`);
    if (state.events) state.events.close();
    setStatus("connecting", "Connecting…");
    const events = new EventSource(`/api/stream?${query}`);
    events.addEventListener("snapshot", (event) => {
      if (events !== state.events) return;
      render(JSON.parse(event.data));
    });
    events.addEventListener("error", () => {
      if (events === state.events) setStatus("error", "Disconnected, retrying…");
    });
    state.events = events;
  }

  function setStatus(kind, text) {
    const status = byId("status");
    status.dataset.state = kind;
    status.textContent = text;
  }

  function render(snapshot) {
    state.snapshot = snapshot;
    const banner = byId("banner");
    banner.hidden = !snapshot.error;
    banner.textContent = snapshot.error || "";
    if (snapshot.error) {
      setStatus("error", "ClickHouse unavailable");
      return;
    }
    const time = new Date().toISOString().slice(11, 19);
    setStatus("live", `Live · updated ${time} UTC`);
    const coinParameter = state.spec.parameters.find((p) => p.slug === "coin");
    const source = coinParameter && coinParameter.values_from;
    const sourceData = source && snapshot.cards[source.card];
    if (sourceData) {
      const index = sourceData.columns.indexOf(source.column);
      setCoinOptions(sourceData.rows.map((row) => row[index]));
    }
    renderCandles(snapshot);
    for (const panel of byId("grid").children) {
      const card = state.spec.cards.find((c) => c.key === panel.dataset.card);
      renderCard(panel, card, snapshot);
    }
  }

  function emptyText(card, snapshot) {
    return card.tags.includes("coin") ? `No data yet for ${snapshot.coin}.` : "No data yet.";
  }

  function renderCard(panel, card, snapshot) {
    const data = snapshot.cards[card.key];
    const body = panel.children[1];
    const empty = panel.querySelector(".empty");
    if (!data) {
      panel.dataset.state = "error";
      empty.textContent = snapshot.errors[card.key] || "Not available.";
      clear(body);
      return;
    }
    if (data.rows.length === 0) {
      panel.dataset.state = "empty";
      empty.textContent = emptyText(card, snapshot);
      clear(body);
      return;
    }
    if (card.display === "table") renderTable(body, card, data);
    else if (card.display === "scalar") renderScalar(body, card, data);
    else renderChart(body, card, data);
    panel.dataset.state = "ready";
  }

  function clear(body) {
    if (body.classList.contains("chart")) Plotly.purge(body);
    body.replaceChildren();
  }

  function renderTable(body, card, data) {
    const table = document.createElement("table");
    table.dataset.card = card.key;
    const head = table.createTHead().insertRow();
    for (const column of data.columns) {
      const th = document.createElement("th");
      th.textContent = columnTitle(card, column);
      head.append(th);
    }
    const tbody = table.createTBody();
    const codeIndex = data.columns.indexOf("code");
    for (const row of data.rows) {
      const tr = tbody.insertRow();
      if (codeIndex >= 0) tr.dataset.code = row[codeIndex];
      row.forEach((value, index) => {
        const column = data.columns[index];
        const td = tr.insertCell();
        td.dataset.column = column;
        td.dataset.value = value === null ? "" : String(value);
        td.textContent = formatValue(card, column, value);
        if (typeof value === "number") {
          td.classList.add("number");
          if (column.endsWith("_pct") && value !== 0) td.classList.add(value > 0 ? "up" : "down");
        }
      });
    }
    body.replaceChildren(table);
  }

  function renderScalar(body, card, data) {
    const column = (card.visualization || {})["scalar.field"] || data.columns[0];
    const value = data.rows[0][data.columns.indexOf(column)];
    const div = document.createElement("div");
    div.className = "scalar";
    div.dataset.card = card.key;
    div.dataset.value = value === null ? "" : String(value);
    div.textContent = formatValue(card, column, value);
    body.replaceChildren(div);
  }

  function chartTraces(card, data) {
    const settings = card.visualization || {};
    const dimensions = settings["graph.dimensions"] || [data.columns[0]];
    const metrics = settings["graph.metrics"] || data.columns.slice(1);
    const series = settings.series_settings || {};
    const column = (name) => data.rows.map((row) => row[data.columns.indexOf(name)]);
    const x = column(dimensions[0]);
    const traces = [];
    const groups = dimensions.length > 1 ? column(dimensions[1]) : null;
    metrics.forEach((metric, index) => {
      const own = series[metric] || {};
      const kind = card.display === "combo" ? (own.display || "line") : card.display;
      const base = {
        name: seriesTitle(card, metric),
        yaxis: own.axis === "right" ? "y2" : "y",
        marker: { color: COLORS[index % COLORS.length] },
      };
      if (kind === "bar") Object.assign(base, { type: "bar", opacity: own.axis === "right" ? 0.35 : 1 });
      else Object.assign(base, { type: "scatter", mode: "lines",
                                 line: { color: COLORS[index % COLORS.length], width: 2 },
                                 connectgaps: own["line.missing"] === "interpolate" });
      const y = column(metric);
      if (!groups) { traces.push({ ...base, x, y }); return; }
      for (const group of Array.from(new Set(groups))) {
        const keep = groups.map((g) => g === group);
        traces.push({ ...base, name: `${group} ${base.name}`, marker: {},
                      line: base.line ? { width: 2 } : undefined,
                      x: x.filter((_, i) => keep[i]), y: y.filter((_, i) => keep[i]) });
      }
    });
    return { traces, settings };
  }

  function renderChart(body, card, data) {
    const { traces, settings } = chartTraces(card, data);
    const layout = {
      margin: { l: 56, r: traces.some((t) => t.yaxis === "y2") ? 48 : 12, t: 6, b: 36 },
      showlegend: traces.length > 1,
      legend: { orientation: "h", y: 1.12, x: 0 },
      xaxis: { title: { text: settings["graph.x_axis.title_text"] || "" }, automargin: true },
      yaxis: { title: { text: settings["graph.y_axis.title_text"] || "" }, automargin: true },
      yaxis2: { overlaying: "y", side: "right", showgrid: false },
      barmode: "group",
      paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)",
    };
    Plotly.react(body, traces, layout, PLOT_CONFIG);
  }

  // ---- the candlestick chart ----------------------------------------------------------------

  function toMillis(text) {
    return Date.parse(text.length <= 10 ? `${text}T00:00:00Z` : `${text.replace(" ", "T")}Z`);
  }

  function fromMillis(ms) {
    return new Date(ms).toISOString().replace("T", " ").replace("Z", "");
  }

  function renderCandles(snapshot) {
    const chart = byId("candles");
    const empty = byId("candles-empty");
    const timeframe = state.spec.live.candlestick.timeframes.find((t) => t.label === snapshot.timeframe);
    const data = snapshot.cards[timeframe.card];
    byId("candles-title").textContent =
      `${state.spec.live.candlestick.title}: ${snapshot.coin}, ${timeframe.label}`;
    const finish = (kind, text) => {
      chart.dataset.coin = snapshot.coin;
      chart.dataset.timeframe = snapshot.timeframe;
      chart.dataset.state = kind;
      if (text) empty.textContent = text;
    };
    if (!data || data.rows.length === 0) {
      Plotly.purge(chart);
      chart.dataset.candleCount = "0";
      chart.dataset.overlayCount = "0";
      if (!data) finish("error", snapshot.errors[timeframe.card] || "Not available.");
      else finish("empty", `No ${timeframe.label} candles for ${snapshot.coin} yet. ` +
                           "They appear here as soon as rates arrive.");
      return;
    }
    const column = (name) => data.rows.map((row) => row[data.columns.indexOf(name)]);
    const period = timeframe.seconds * 1000;
    const candles = {
      type: "candlestick", name: `${snapshot.coin} ${timeframe.label}`,
      x: column("bucket_start"), open: column("open"), high: column("high"),
      low: column("low"), close: column("close"),
      xperiod: period, xperiodalignment: "middle",
      increasing: { line: { color: "#16a34a" }, fillcolor: "#16a34a" },
      decreasing: { line: { color: "#dc2626" }, fillcolor: "#dc2626" },
    };
    // The x range: the candles' periods and half a period of margin on each side.
    const from = toMillis(candles.x[0]) - period / 2;
    const to = toMillis(candles.x[candles.x.length - 1]) + period * 1.5;
    const traces = [candles];
    const overlay = timeframe.overlay;
    const overlayData = overlay && snapshot.cards[overlay.card];
    if (overlayData) {
      const xs = overlayData.columns.indexOf(overlay.x);
      const ys = overlayData.columns.indexOf(overlay.y);
      const points = overlayData.rows.filter((row) => row[ys] !== null
        && toMillis(row[xs]) >= from && toMillis(row[xs]) <= to);
      traces.push({ type: "scatter", mode: "lines+markers", name: overlay.title,
                    x: points.map((row) => row[xs]), y: points.map((row) => row[ys]),
                    line: { color: "#2563eb", width: 2 }, marker: { size: 4 } });
    }
    const layout = {
      margin: { l: 64, r: 16, t: 8, b: 40 },
      xaxis: { rangeslider: { visible: false }, type: "date", title: { text: "UTC" },
               range: [fromMillis(from), fromMillis(to)] },
      yaxis: { title: { text: "USD" }, automargin: true },
      legend: { orientation: "h", y: 1.08, x: 0 },
      paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)",
    };
    Plotly.react(chart, traces, layout, PLOT_CONFIG).then(() => {
      if (state.snapshot !== snapshot) return;  // a newer snapshot is being drawn
      chart.dataset.candleCount = String(chart.data[0].x.length);
      chart.dataset.overlayCount = String(chart.data.length > 1 ? chart.data[1].x.length : 0);
      finish("ready", "");
    });
  }

  // ---- start --------------------------------------------------------------------------------

  async function start() {
    const response = await fetch("/api/spec");
    state.spec = await response.json();
    document.title = state.spec.live.title;
    byId("title").textContent = state.spec.live.title;
    byId("plotly-version").textContent = `plotly.js ${state.spec.plotly_version}`;
    const query = new URLSearchParams(location.search);
    const coinParameter = state.spec.parameters.find((p) => p.slug === "coin");
    state.coin = query.get("coin") || (coinParameter && coinParameter.default) || "";
    const labels = state.spec.live.candlestick.timeframes.map((t) => t.label);
    state.timeframe = labels.includes(query.get("timeframe")) ? query.get("timeframe") : labels[0];
    buildSelectors();
    buildGrid();
    reconnect();
  }

  start().catch((error) => setStatus("error", `Cannot load the dashboard: ${error}`));
})();

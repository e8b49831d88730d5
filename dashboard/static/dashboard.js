// The local live dashboard. It knows nothing of coinstream's cards: it fetches the dashboard spec
// (/api/spec, from metabase/dashboards/*.yaml) and draws what it says, Metabase's way: tables,
// scalars, line/bar/combo charts from visualization_settings, on Metabase's 24-column grid. On top,
// the candlestick chart of the chosen timeframe (spec.live.candlestick) with its moving average.
// Data arrives as server-sent events (/api/stream): a snapshot of every card for the chosen coin
// and timeframe, again whenever it changes.
//
// Under the candles, on the same time axis, the chosen indicators (RSI, stochastic, MACD, %B,
// bandwidth, ATR) each in a panel of its own, and over them the chosen SMAs, EMAs and Bollinger
// Bands. Their values come from the cards with a `timeframe` column (one series per timeframe,
// looked up by column name): the rows of the chosen timeframe are drawn, NULLs as gaps, nothing
// is computed here. Such cards are drawn there, not in the grid.
//
// For tests and tools the rendered state is in the DOM: #candles carries data-state
// (waiting|empty|ready|error), data-coin, data-timeframe, data-candle-count and data-overlay-count
// (counted from the plotted traces), data-indicators (the chosen indicators, comma-separated) and
// data-indicator-points (JSON: points plotted per chosen indicator, its first series); every table
// cell carries data-column and data-value.
"use strict";

(() => {
  const state = { spec: null, coin: "", timeframe: "", events: null, snapshot: null, indicators: [] };
  const byId = (id) => document.getElementById(id);
  const PLOT_CONFIG = { displaylogo: false, responsive: true,
                        modeBarButtonsToRemove: ["lasso2d", "select2d"] };
  const COLORS = ["#2563eb", "#f59e0b", "#10b981", "#8b5cf6", "#ef4444", "#0ea5e9"];
  // The indicators the page can draw: a panel under the candles or an overlay on them; each
  // series is [column, title]; `bars` is drawn as bars; `guides` are horizontal reference lines.
  const INDICATORS = [
    { key: "rsi", label: "RSI (14)", panel: true, series: [["rsi_14", "RSI 14"]], range: [0, 100],
      guides: [30, 70] },
    { key: "stoch", label: "Stochastic (14, 3, 3)", panel: true,
      series: [["stoch_k", "%K"], ["stoch_d", "%D"]], range: [0, 100], guides: [20, 80] },
    { key: "macd", label: "MACD (12, 26, 9)", panel: true,
      series: [["macd", "MACD"], ["macd_signal", "Signal"]], bars: ["macd_hist", "Histogram"] },
    { key: "percent_b", label: "Bollinger %B", panel: true, series: [["bb_percent_b", "%B"]],
      guides: [0, 1] },
    { key: "bandwidth", label: "Bollinger bandwidth", panel: true,
      series: [["bb_bandwidth", "Bandwidth"]] },
    { key: "atr", label: "ATR (14)", panel: true, series: [["atr_14", "ATR 14"]] },
    { key: "bb", label: "Bollinger Bands (20, 2)", panel: false,
      series: [["bb_upper", "BB upper"], ["bb_middle", "BB middle"], ["bb_lower", "BB lower"]] },
    { key: "sma_20", label: "SMA 20", panel: false, series: [["sma_20", "SMA 20"]] },
    { key: "sma_50", label: "SMA 50", panel: false, series: [["sma_50", "SMA 50"]] },
    { key: "sma_200", label: "SMA 200", panel: false, series: [["sma_200", "SMA 200"]] },
    { key: "ema_12", label: "EMA 12", panel: false, series: [["ema_12", "EMA 12"]] },
    { key: "ema_26", label: "EMA 26", panel: false, series: [["ema_26", "EMA 26"]] },
    { key: "ema_50", label: "EMA 50", panel: false, series: [["ema_50", "EMA 50"]] },
    { key: "ema_200", label: "EMA 200", panel: false, series: [["ema_200", "EMA 200"]] },
  ];
  const DEFAULT_INDICATORS = ["rsi", "macd", "bb"];
  const PANEL_PX = 150;

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
    const keys = state.spec.live.candlestick.timeframes.map((t) => t.card);
    // Per-timeframe indicator cards are drawn with the candles, not in the grid.
    const perTimeframe = state.spec.cards.filter((card) => card.columns.includes("timeframe"));
    return new Set([...keys, ...perTimeframe.map((card) => card.key)]);
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
    const picker = byId("indicators");
    for (const [panel, heading] of [[true, "Panels"], [false, "Overlays"]]) {
      const group = document.createElement("fieldset");
      const legend = document.createElement("legend");
      legend.textContent = heading;
      group.append(legend);
      for (const indicator of INDICATORS.filter((i) => i.panel === panel)) {
        const label = document.createElement("label");
        const box = document.createElement("input");
        box.type = "checkbox";
        box.value = indicator.key;
        box.checked = state.indicators.includes(indicator.key);
        box.addEventListener("change", () => {
          state.indicators = Array.from(picker.querySelectorAll("input:checked")).map((b) => b.value);
          if (state.snapshot && !state.snapshot.error) renderCandles(state.snapshot);
        });
        label.append(box, ` ${indicator.label}`);
        group.append(label);
      }
      picker.append(group);
    }
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
      type: "candlestick", name: `${snapshot.coin} ${timeframe.label}`, meta: "candles",
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
      traces.push({ type: "scatter", mode: "lines+markers", name: overlay.title, meta: "overlay",
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
    const panels = addIndicators(traces, layout, snapshot, from, to);
    // Each panel adds its height to the chart's (the panel's title and padding take 50 px).
    byId("candles-panel").style.height = `${440 + PANEL_PX * panels}px`;
    layout.height = 390 + PANEL_PX * panels;
    Plotly.react(chart, traces, layout, PLOT_CONFIG).then(() => {
      if (state.snapshot !== snapshot) return;  // a newer snapshot is being drawn
      const count = (meta) => {
        const trace = chart.data.find((t) => t.meta === meta);
        return trace ? trace.y.filter((y) => y !== null && y !== undefined).length : 0;
      };
      chart.dataset.candleCount = String(chart.data[0].x.length);
      chart.dataset.overlayCount = String(count("overlay"));
      chart.dataset.indicators = state.indicators.join(",");
      chart.dataset.indicatorPoints = JSON.stringify(Object.fromEntries(
        state.indicators.map((key) => [key, count(`indicator:${key}`)])));
      finish("ready", "");
    });
  }

  // The chosen timeframe's rows of the per-timeframe card holding `column`, within [from, to].
  function indicatorRows(snapshot, column, from, to) {
    for (const data of Object.values(snapshot.cards)) {
      const index = data.columns.indexOf(column);
      const tf = data.columns.indexOf("timeframe");
      const x = data.columns.indexOf("bucket_start");
      if (index < 0 || tf < 0 || x < 0) continue;
      const rows = data.rows.filter((row) => row[tf] === snapshot.timeframe
        && toMillis(row[x]) >= from && toMillis(row[x]) <= to);
      return { x: rows.map((row) => row[x]), y: rows.map((row) => row[index]) };
    }
    return null;
  }

  // The chosen overlays onto the candles' axis and the chosen panels, each on an axis of its own
  // stacked under the candles (one shared time axis, at the bottom); the number of panels.
  function addIndicators(traces, layout, snapshot, from, to) {
    const chosen = INDICATORS.filter((indicator) => state.indicators.includes(indicator.key));
    const panels = chosen.filter((indicator) => indicator.panel);
    const share = panels.length ? Math.min(0.6, 0.22 * panels.length) : 0;
    const gap = 0.03;
    layout.yaxis.domain = [share, 1];
    chosen.forEach((indicator, number) => {
      const slot = panels.indexOf(indicator);
      const axis = slot < 0 ? "y" : `y${slot + 2}`;
      if (slot >= 0) {
        const height = share / panels.length;
        const top = share - slot * height;
        layout[`yaxis${slot + 2}`] = {
          domain: [Math.max(0, top - height + gap), top - gap], anchor: "x", automargin: true,
          title: { text: indicator.label.replace(/ \(.*\)$/, "") },
          range: indicator.range, fixedrange: false, zeroline: false,
        };
        for (const level of indicator.guides || []) {
          traces.push({ type: "scatter", mode: "lines", x: [fromMillis(from), fromMillis(to)], y: [level, level],
                        yaxis: axis, hoverinfo: "skip", showlegend: false,
                        line: { color: "#9aa5b1", width: 1, dash: "dot" } });
        }
      }
      if (indicator.bars) {
        const bars = indicatorRows(snapshot, indicator.bars[0], from, to);
        if (bars) traces.push({ type: "bar", name: indicator.bars[1], x: bars.x, y: bars.y, yaxis: axis,
                                marker: { color: "#9aa5b1" }, opacity: 0.6 });
      }
      indicator.series.forEach(([column, title], index) => {
        const points = indicatorRows(snapshot, column, from, to);
        if (!points) return;
        const color = COLORS[(number + index) % COLORS.length];
        traces.push({ type: "scatter", mode: "lines", name: title, x: points.x, y: points.y, yaxis: axis,
                      meta: index === 0 ? `indicator:${indicator.key}` : undefined,
                      connectgaps: false, line: { color, width: 1.5, dash: index === 1 ? "dot" : "solid" } });
      });
    });
    if (panels.length) layout.xaxis.anchor = `y${panels.length + 1}`;
    return panels.length;
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
    const keys = INDICATORS.map((indicator) => indicator.key);
    const asked = query.get("indicators");
    state.indicators = asked === null ? DEFAULT_INDICATORS : asked.split(",").filter((k) => keys.includes(k));
    buildSelectors();
    buildGrid();
    reconnect();
  }

  start().catch((error) => setStatus("error", `Cannot load the dashboard: ${error}`));
})();

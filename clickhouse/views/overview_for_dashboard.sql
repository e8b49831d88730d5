-- One row per coin known from the live rates or the daily closes. A coin with live rates shows
-- its latest live record: rate, the API's own 24 h and 7 d changes ((delta - 1) * 100), the API's
-- 24 h volume, cap, fetched_at. A coin with only daily closes shows its latest close and the
-- changes against 1 and 7 calendar days earlier. Unknown is NULL. No joins of unmatched rows:
-- the two sources are stacked (UNION ALL) and the preferred one is picked per coin.
CREATE OR REPLACE VIEW overview_for_dashboard AS
SELECT
    code,
    best.1 AS name,
    best.2 AS rate,
    best.3 AS change_24h_pct,
    best.4 AS change_7d_pct,
    best.5 AS volume_24h,
    best.6 AS cap,
    best.7 AS updated_at,
    best.8 AS source
FROM
(
    SELECT
        code,
        argMax((name, rate, change_24h_pct, change_7d_pct, volume_24h, cap, updated_at, source),
               priority) AS best
    FROM
    (
        SELECT
            code,
            l.name AS name,
            l.rate AS rate,
            (l.delta_day - 1) * 100 AS change_24h_pct,
            (l.delta_week - 1) * 100 AS change_7d_pct,
            l.volume AS volume_24h,
            l.cap AS cap,
            l.fetched_at AS updated_at,
            'live' AS source,
            2 AS priority
        FROM
        (
            SELECT code, finalizeAggregation(latest_state) AS l
            FROM coins_latest FINAL
        )
        UNION ALL
        SELECT
            code,
            name,
            rate,
            change_1d_pct AS change_24h_pct,
            change_7d_pct,
            volume AS volume_24h,
            cap,
            ts AS updated_at,
            'daily' AS source,
            1 AS priority
        FROM v_change_by_day_latest
    )
    GROUP BY code
);

-- Days without a usable close, with the reason (empty history, unknown coin, null rate, ...).
CREATE OR REPLACE VIEW v_hist_gaps AS
SELECT topic, code, date, reason, credits, run_id, recorded_at
FROM v_hist_backfill_state
WHERE outcome = 'gap';

-- The floor: the plain DuckDB SQL a data engineer would write for a company's core revenue results, on the same
-- Parquet folder `upcurve run` reads, with the same rules, so that upcurve's time can be put beside it.
--
--   mrr_cells    MRR per account, product and month, in cents of the reporting currency (USD)
--   movements    per account and month: new, expansion, contraction, churn, reactivation (constant currency) and fx
--   metrics      per month: MRR, customers, each movement type, NRR and GRR over the month and over twelve months
--
-- The rules are upcurve's (docs/metrics.md): a line counts in each month whose last day (the as-of date in the
-- as-of month) falls in its service period; its monthly amount is amount ÷ calendar months when the period runs
-- from a day of the month to the same day (month ends clamped), else ÷ days/30.4375; converted at the month's
-- rate (the latest known, else the first), rounded to the cent once per line and month; movements are classified
-- at the previous month's rate. What the floor leaves out (upcurve does it on top): checking the input, expansion
-- by source, segments, cohorts, signals, health and the model. Proration lines and a settings file are not
-- handled: the benchmark's simulated folders have neither. `{data}` is replaced by the folder's path.

CREATE TEMP TABLE all_lines AS SELECT * FROM read_parquet('{data}/invoice_lines.parquet');

CREATE TEMP TABLE calendar AS
WITH bounds AS (SELECT min(period_start) AS first, max(period_start) AS as_of FROM all_lines)
SELECT year(m) * 12 + month(m) - 1 AS month_idx, strftime(m, '%Y-%m') AS month,
       least(last_day(m), as_of) AS measured_on
FROM bounds, (SELECT unnest(generate_series(date_trunc('month', first), as_of, INTERVAL 1 MONTH))::DATE AS m
              FROM bounds);

CREATE TEMP TABLE rates AS
WITH fx AS (
    SELECT currency, year(strptime(month, '%Y-%m')) * 12 + month(strptime(month, '%Y-%m')) - 1 AS idx, rate
    FROM read_parquet('{data}/fx_rates.parquet')),
first_rate AS (SELECT currency, arg_min(rate, idx) AS rate FROM fx GROUP BY currency),
grid AS (SELECT c.month_idx, f.currency FROM calendar c, first_rate f),
known AS (
    SELECT grid.month_idx, grid.currency, coalesce(fx.rate, first_rate.rate) AS rate
    FROM grid ASOF LEFT JOIN fx ON grid.currency = fx.currency AND grid.month_idx >= fx.idx
    JOIN first_rate ON first_rate.currency = grid.currency)
SELECT month_idx, currency, rate,
       coalesce(lag(rate) OVER (PARTITION BY currency ORDER BY month_idx), rate) AS prev_rate
FROM known;

CREATE TEMP TABLE mrr_cells AS
WITH lines AS (
    SELECT l.account_id, p.product, coalesce(l.currency, 'USD') AS currency, l.period_start, l.period_end,
           l.amount::DOUBLE * 100 / CASE
               WHEN day(period_start) = day(period_end)
                 OR (period_end = last_day(period_end) AND day(period_start) >= day(period_end))
                 OR (period_start = last_day(period_start) AND period_end = last_day(period_end))
               THEN ((year(period_end) - year(period_start)) * 12 + month(period_end) - month(period_start))::DOUBLE
               ELSE (period_end - period_start)::DOUBLE / (365.25 / 12) END AS monthly
    FROM all_lines l JOIN read_parquet('{data}/plans.parquet') p USING (plan_id)
    WHERE l.kind IN ('subscription', 'usage'))
SELECT account_id, product, c.month_idx, c.month,
       sum(round(monthly * CASE WHEN lines.currency = 'USD' THEN 1.0 ELSE r.rate END))::BIGINT AS mrr_cents,
       sum(round(monthly * CASE WHEN lines.currency = 'USD' THEN 1.0 ELSE r.prev_rate END))::BIGINT AS cc_mrr_cents
FROM lines JOIN calendar c ON c.measured_on >= lines.period_start AND c.measured_on < lines.period_end
LEFT JOIN rates r ON r.currency = lines.currency AND r.month_idx = c.month_idx
GROUP BY ALL;

CREATE TEMP TABLE movements AS
WITH acct AS (
    SELECT account_id, month_idx, sum(mrr_cents) AS mrr, sum(cc_mrr_cents) AS cc
    FROM mrr_cells GROUP BY ALL),
pairs AS (
    SELECT coalesce(cur.account_id, prev.account_id) AS account_id,
           coalesce(cur.month_idx, prev.month_idx + 1) AS month_idx,
           coalesce(cur.mrr, 0) AS cur, coalesce(cur.cc, 0) AS cc, coalesce(prev.mrr, 0) AS prev
    FROM acct cur FULL JOIN acct prev ON cur.account_id = prev.account_id AND cur.month_idx = prev.month_idx + 1),
classified AS (
    SELECT *, max(CASE WHEN cur > 0 THEN month_idx END) OVER (
                  PARTITION BY account_id ORDER BY month_idx ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
              ) IS NOT NULL AS paid_before
    FROM pairs WHERE month_idx <= (SELECT max(month_idx) FROM calendar))
SELECT account_id, month_idx, (SELECT month FROM calendar c WHERE c.month_idx = classified.month_idx) AS month,
       CASE WHEN prev <= 0 AND cur > 0 AND paid_before THEN 'reactivation'
            WHEN prev <= 0 AND cur > 0 THEN 'new'
            WHEN prev > 0 AND cur <= 0 THEN 'churn'
            WHEN cc > prev THEN 'expansion'
            WHEN cc < prev THEN 'contraction' END AS type,
       CASE WHEN prev <= 0 AND cur > 0 THEN cur WHEN prev > 0 AND cur > 0 THEN cc - prev ELSE -prev END
           AS amount_cents,
       CASE WHEN prev > 0 AND cur > 0 THEN cur - cc ELSE 0 END AS fx_cents,
       cur, prev
FROM classified;

CREATE TEMP TABLE metrics AS
WITH twelve AS (
    SELECT base.month_idx + 12 AS month_idx, sum(base.cur) AS base_cents, sum(coalesce(now.cur, 0)) AS now_cents,
           sum(least(coalesce(now.cur, 0), base.cur)) AS kept_cents
    FROM movements base LEFT JOIN movements now
      ON now.account_id = base.account_id AND now.month_idx = base.month_idx + 12
    WHERE base.cur > 0 GROUP BY ALL),
months AS (
    SELECT month_idx, sum(cur) FILTER (cur > 0) AS mrr_cents, count(*) FILTER (cur > 0) AS customers,
           sum(prev) AS prev_mrr_cents,
           sum(amount_cents) FILTER (type = 'new') AS new_cents,
           sum(amount_cents) FILTER (type = 'expansion') AS expansion_cents,
           sum(amount_cents) FILTER (type = 'contraction') AS contraction_cents,
           sum(amount_cents) FILTER (type = 'churn') AS churn_cents,
           sum(amount_cents) FILTER (type = 'reactivation') AS reactivation_cents,
           sum(fx_cents) AS fx_cents
    FROM movements GROUP BY ALL)
SELECT c.month, coalesce(mrr_cents, 0) AS mrr_cents, coalesce(customers, 0) AS customers,
       coalesce(new_cents, 0) AS new_cents, coalesce(expansion_cents, 0) AS expansion_cents,
       coalesce(contraction_cents, 0) AS contraction_cents, coalesce(churn_cents, 0) AS churn_cents,
       coalesce(reactivation_cents, 0) AS reactivation_cents, coalesce(fx_cents, 0) AS fx_cents,
       (prev_mrr_cents + coalesce(expansion_cents, 0) + coalesce(contraction_cents, 0) + coalesce(churn_cents, 0))
           / nullif(prev_mrr_cents, 0) AS nrr_month,
       now_cents / nullif(base_cents, 0) AS nrr_12m,
       kept_cents / nullif(base_cents, 0) AS grr_12m
FROM calendar c LEFT JOIN months USING (month_idx) LEFT JOIN twelve USING (month_idx)
ORDER BY c.month_idx;

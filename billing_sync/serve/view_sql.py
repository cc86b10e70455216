"""The analysts' views, defined once: SQL that PostgreSQL and DuckDB both run unchanged.

Each view reads the entity tables through ``{entity}`` placeholders that
:func:`billing_sync.serve.views.render_view` fills with the live rows (``NOT _is_deleted``)
of the columns listed in :data:`INPUTS`; an entity or column that no configured biller
maps becomes typed NULLs, so a view still answers for the billers that have it. Both
billers share the entity tables (keyed by ``_source_system``), so every view covers both;
joins match ``_source_system``, ``site_id`` and ``account_number`` (Amdocs: site ``AMD``).

Portability rules the texts follow: explicit casts on every aggregate (``sum`` of an
integer is ``bigint`` in PostgreSQL but ``HUGEINT`` in DuckDB), ``NULLS LAST`` spelled out
(the engines' defaults differ for ``DESC``), nothing that depends on the session's clock
or time zone (no ``current_date``), ties broken by a key column.
"""

from __future__ import annotations

# The columns each view reads per entity, with the catalog type to use when absent.
INPUTS: dict[str, tuple[tuple[str, str], ...]] = {
    "billing_account": (
        ("site_id", "text"),
        ("account_number", "text"),
        ("customer_id", "text"),
        ("name", "text"),
        ("account_type", "text"),
        ("status", "text"),
        ("bill_cycle", "integer"),
        ("balance", "decimal(12,2)"),
        ("opened_date", "date"),
    ),
    "customer": (
        ("site_id", "text"),
        ("customer_id", "text"),
        ("customer_type", "text"),
        ("first_name", "text"),
        ("last_name", "text"),
    ),
    "product": (
        ("site_id", "text"),
        ("account_number", "text"),
        ("product_code", "text"),
        ("status", "text"),
        ("monthly_rate", "decimal(10,2)"),
        ("quantity", "integer"),
    ),
    "customer_bill": (
        ("site_id", "text"),
        ("account_number", "text"),
        ("bill_number", "integer"),
        ("bill_date", "date"),
        ("due_date", "date"),
        ("new_charges", "decimal(12,2)"),
        ("amount_due", "decimal(12,2)"),
    ),
    "payment": (
        ("site_id", "text"),
        ("account_number", "text"),
        ("payment_number", "bigint"),
        ("payment_date", "date"),
        ("amount", "decimal(12,2)"),
        ("method", "text"),
        ("status", "text"),
    ),
    "adjustment": (
        ("site_id", "text"),
        ("account_number", "text"),
        ("adjustment_number", "bigint"),
        ("adjustment_date", "date"),
        ("amount", "decimal(12,2)"),
    ),
    "work_order": (
        ("site_id", "text"),
        ("account_number", "text"),
        ("work_order_number", "bigint"),
        ("status", "text"),
    ),
}

ACTIVE_PRODUCT = "active"
POSTED, REVERSED = "posted", "reversed"
OPEN_WORK_ORDER = ("open", "scheduled")

ACCOUNT_360 = f"""
WITH account AS ({{billing_account}}),
customer AS ({{customer}}),
product AS ({{product}}),
bill AS ({{customer_bill}}),
payment AS ({{payment}}),
work_order AS ({{work_order}}),
products AS (
    -- One CTE reads ``product`` once: a CTE referenced twice is materialized by
    -- PostgreSQL (a sequential scan of every product whatever the outer WHERE), one
    -- referenced once is inlined, so a query for one account reads that account's rows.
    SELECT _source_system, site_id, account_number,
           CAST(count(*) AS bigint) AS active_products,
           CAST(sum(monthly_rate * coalesce(quantity, 1)) AS numeric(14,2)) AS monthly_recurring,
           string_agg(DISTINCT product_code, ',' ORDER BY product_code) AS active_product_codes
      FROM product
     WHERE status = '{ACTIVE_PRODUCT}'
     GROUP BY _source_system, site_id, account_number
),
bills AS (
    SELECT _source_system, site_id, account_number, bill_number, bill_date, due_date, amount_due,
           row_number() OVER (
               PARTITION BY _source_system, site_id, account_number
               ORDER BY bill_date DESC NULLS LAST, bill_number DESC
           ) AS newest
      FROM bill
),
payments AS (
    SELECT _source_system, site_id, account_number, payment_date, amount, method, status,
           row_number() OVER (
               PARTITION BY _source_system, site_id, account_number
               ORDER BY payment_date DESC NULLS LAST, payment_number DESC
           ) AS newest
      FROM payment
),
open_orders AS (
    SELECT _source_system, site_id, account_number, CAST(count(*) AS bigint) AS open_work_orders
      FROM work_order
     WHERE status IN {OPEN_WORK_ORDER!r}
     GROUP BY _source_system, site_id, account_number
)
SELECT a._source_system AS source_system,
       a.site_id,
       a.account_number,
       a.name AS account_name,
       a.account_type,
       a.status AS account_status,
       a.bill_cycle,
       a.opened_date,
       a.balance AS current_balance,
       a.customer_id,
       c.customer_type,
       coalesce(nullif(trim(concat_ws(' ', c.first_name, c.last_name)), ''), a.name)
           AS customer_name,
       CAST(coalesce(p.active_products, 0) AS bigint) AS active_products,
       CAST(coalesce(p.monthly_recurring, 0) AS numeric(14,2)) AS monthly_recurring,
       p.active_product_codes,
       b.bill_number AS last_bill_number,
       b.bill_date AS last_bill_date,
       b.due_date AS last_bill_due_date,
       b.amount_due AS last_bill_amount_due,
       y.payment_date AS last_payment_date,
       y.amount AS last_payment_amount,
       y.method AS last_payment_method,
       y.status AS last_payment_status,
       CAST(coalesce(w.open_work_orders, 0) AS bigint) AS open_work_orders
  FROM account AS a
  LEFT JOIN customer AS c
    ON c._source_system = a._source_system AND c.site_id = a.site_id
   AND c.customer_id = a.customer_id
  LEFT JOIN products AS p
    ON p._source_system = a._source_system AND p.site_id = a.site_id
   AND p.account_number = a.account_number
  LEFT JOIN bills AS b
    ON b._source_system = a._source_system AND b.site_id = a.site_id
   AND b.account_number = a.account_number AND b.newest = 1
  LEFT JOIN payments AS y
    ON y._source_system = a._source_system AND y.site_id = a.site_id
   AND y.account_number = a.account_number AND y.newest = 1
  LEFT JOIN open_orders AS w
    ON w._source_system = a._source_system AND w.site_id = a.site_id
   AND w.account_number = a.account_number
"""

DAILY_REVENUE = f"""
WITH bill AS ({{customer_bill}}),
payment AS ({{payment}}),
adjustment AS ({{adjustment}}),
events AS (
    SELECT _source_system, site_id, bill_date AS day,
           CAST(1 AS bigint) AS bills, CAST(new_charges AS numeric(14,2)) AS billed,
           CAST(0 AS bigint) AS payments, CAST(0 AS numeric(14,2)) AS paid,
           CAST(0 AS bigint) AS adjustments, CAST(0 AS numeric(14,2)) AS adjusted
      FROM bill
     WHERE bill_date IS NOT NULL
    UNION ALL
    SELECT _source_system, site_id, payment_date, 0, 0, 1, amount, 0, 0
      FROM payment
     WHERE payment_date IS NOT NULL AND status = '{POSTED}'
    UNION ALL
    SELECT _source_system, site_id, adjustment_date, 0, 0, 0, 0, 1, amount
      FROM adjustment
     WHERE adjustment_date IS NOT NULL
)
SELECT _source_system AS source_system,
       site_id,
       day,
       CAST(sum(bills) AS bigint) AS bills,
       CAST(coalesce(sum(billed), 0) AS numeric(14,2)) AS billed,
       CAST(sum(payments) AS bigint) AS payments,
       CAST(coalesce(sum(paid), 0) AS numeric(14,2)) AS paid,
       CAST(sum(adjustments) AS bigint) AS adjustments,
       CAST(coalesce(sum(adjusted), 0) AS numeric(14,2)) AS adjusted
  FROM events
 GROUP BY _source_system, site_id, day
"""

PAYMENT_ACTIVITY = f"""
WITH payment AS ({{payment}})
SELECT _source_system AS source_system,
       site_id,
       payment_date AS day,
       method,
       CAST(count(*) AS bigint) AS payments,
       CAST(count(DISTINCT account_number) AS bigint) AS accounts,
       CAST(count(*) FILTER (WHERE status = '{POSTED}') AS bigint) AS posted,
       CAST(coalesce(sum(amount) FILTER (WHERE status = '{POSTED}'), 0) AS numeric(14,2))
           AS posted_amount,
       CAST(count(*) FILTER (WHERE status = '{REVERSED}') AS bigint) AS reversed,
       CAST(coalesce(sum(amount) FILTER (WHERE status = '{REVERSED}'), 0) AS numeric(14,2))
           AS reversed_amount
  FROM payment
 WHERE payment_date IS NOT NULL
 GROUP BY _source_system, site_id, payment_date, method
"""

"""ICOMS workload operations on services, work orders, equipment, accounts and collections.

Templates in the conventions of :mod:`.fragments` (``$S``, ``$NEW``, ``$STAMP``, ``$TODAY``).
"""

from __future__ import annotations

from billing_sync.simulator.icoms.fragments import (
    _PICK_SERVICE,
    _WO_LINE_COLUMNS,
    _WORK_ORDER_COLUMNS,
    _account,
    _next,
    in_days,
)

_SERVICE_COLUMNS = ('"SITE_ID", "ACCOUNT_NO", "SERVICE_CODE", "OCCURRENCE", "START_DATE", '
                    '"STOP_DATE", "MONTHLY_RATE", "QUANTITY", "SVC_STATUS", $AUDIT')  # fmt: skip
_EQUIPMENT_COLUMNS = ('"SITE_ID", "SERIAL_NO", "ACCOUNT_NO", "EQUIP_TYPE", "MAC_ADDR", "MODEL", '
                      '"EQ_STATUS", "INSTALL_DATE", "REMOVE_DATE", $AUDIT')  # fmt: skip
_OPEN_ACCOUNT = _account("AND x.\"ACCT_STATUS\" <> 'C'")
_OWING_ACCOUNT = _account("AND x.\"AR_BALANCE\" > 0 AND x.\"ACCT_STATUS\" IN ('A', 'S')")
_COLL_COLUMNS = '"SITE_ID", "ACCOUNT_NO", "COLL_SEQ", "STEP_CODE", "STEP_DATE", "PAST_DUE", $AUDIT'

TEMPLATES: dict[str, str] = {
    "add_service": f"""
WITH a AS ({_OPEN_ACCOUNT}), d AS (
    SELECT a."SITE_ID", a."ACCOUNT_NO", {_next("WORK_ORDER", "WO_NO")} + 1 AS wo_no,
           1 + COALESCE((SELECT max(c."OCCURRENCE") FROM $S."CUST_SERVICE" c
                         WHERE c."SITE_ID" = a."SITE_ID" AND c."ACCOUNT_NO" = a."ACCOUNT_NO"
                           AND c."SERVICE_CODE" = %(code)s), 0) AS occurrence
    FROM a
), added AS (
    INSERT INTO $S."CUST_SERVICE" ({_SERVICE_COLUMNS})
    SELECT "SITE_ID", "ACCOUNT_NO", %(code)s, occurrence, $TODAY, 9999999, %(rate)s::numeric,
           %(quantity)s::smallint, 'A', $NEW FROM d RETURNING 1
), wo AS (
    INSERT INTO $S."WORK_ORDER" ({_WORK_ORDER_COLUMNS})
    SELECT "SITE_ID", wo_no, "ACCOUNT_NO", 'CH', 'O', {in_days(2)}, 0, NULL, NULL, $NEW
    FROM d RETURNING 1
), line AS (
    INSERT INTO $S."WO_LINE" ({_WO_LINE_COLUMNS})
    SELECT "SITE_ID", wo_no, 1, %(code)s, 'A', NULL, 0, $NEW FROM d RETURNING 1
)
SELECT (SELECT count(*) FROM added), (SELECT count(*) FROM wo), (SELECT count(*) FROM line)""",
    "change_service": f"""
WITH changed AS (
    UPDATE $S."CUST_SERVICE" SET
        "MONTHLY_RATE" = round("MONTHLY_RATE" * %(factor)s::numeric, 2),
        "QUANTITY" = CASE WHEN "SERVICE_CODE" = ANY(%(multi_unit)s::text[])
                          THEN least(4, greatest(1, "QUANTITY" + %(delta)s::int))
                          ELSE "QUANTITY" END,
        $STAMP
    WHERE {_PICK_SERVICE}
    RETURNING 1
)
SELECT count(*) FROM changed""",
    "disconnect_service": f"""
WITH disconnected AS (
    UPDATE $S."CUST_SERVICE" SET "SVC_STATUS" = 'D', "STOP_DATE" = $TODAY,
        "REC_STATUS" = %(rec_status)s, $STAMP
    WHERE {_PICK_SERVICE}
    RETURNING 1
)
SELECT count(*) FROM disconnected""",
    "open_account": f"""
WITH d AS (
    SELECT %(site)s::char(3) AS "SITE_ID",
           lpad((COALESCE((SELECT max(rtrim(n."ACCOUNT_NO"))::int FROM $S."ACCOUNT" n
                           WHERE n."SITE_ID" = %(site)s), 0) + 1)::text, 8, '0') AS "ACCOUNT_NO",
           'P' || lpad((COALESCE((SELECT max(substr(n."PREMISE_ID", 2, 7))::int FROM $S."PREMISE" n
                                  WHERE n."SITE_ID" = %(site)s), 0) + 1)::text, 7, '0') AS premise,
           {_next("WORK_ORDER", "WO_NO", "%(site)s")} + 1 AS wo_no
), premise AS (
    INSERT INTO $S."PREMISE" ("SITE_ID", "PREMISE_ID", "ADDR_LINE", "CITY", "STATE_CD", "ZIP_CD",
        "DWELLING_TYPE", "NODE_ID", $AUDIT)
    SELECT "SITE_ID", premise, %(address)s, %(city)s, %(state)s, %(zip)s,
           %(dwelling)s, %(node)s, $NEW FROM d RETURNING 1
), opened AS (
    INSERT INTO $S."ACCOUNT" ("SITE_ID", "ACCOUNT_NO", "PARENT_ACCT", "PREMISE_ID", "ACCT_NAME",
        "ACCT_TYPE", "SSN", "DOB", "ACCT_STATUS", "BILL_CYCLE", "AR_BALANCE", "CREDIT_CLASS",
        "PIN", "OPEN_DATE", $AUDIT)
    SELECT "SITE_ID", "ACCOUNT_NO", NULL, premise, %(name)s, %(kind)s, %(ssn)s, %(dob)s, 'A',
           %(cycle)s::smallint, 0, %(credit)s, %(pin)s, $TODAY, $NEW FROM d
    RETURNING "ACCOUNT_NO"
), services AS (
    INSERT INTO $S."CUST_SERVICE" ({_SERVICE_COLUMNS})
    SELECT d."SITE_ID", d."ACCOUNT_NO", v.code, v.occurrence, $TODAY, 9999999, v.rate, v.quantity,
           'A', $NEW
    FROM d CROSS JOIN unnest(%(codes)s::text[], %(occurrences)s::smallint[], %(rates)s::numeric[],
                             %(quantities)s::smallint[]) AS v(code, occurrence, rate, quantity)
    RETURNING 1
), wo AS (
    INSERT INTO $S."WORK_ORDER" ({_WORK_ORDER_COLUMNS})
    SELECT "SITE_ID", wo_no, "ACCOUNT_NO", 'IN', 'S', {in_days(3)}, 0, %(tech)s,
           %(remarks)s, $NEW FROM d RETURNING 1
), lines AS (
    INSERT INTO $S."WO_LINE" ({_WO_LINE_COLUMNS})
    SELECT d."SITE_ID", d.wo_no, v.n, v.code, 'A', v.serial, v.charge, $NEW
    FROM d CROSS JOIN unnest(%(codes)s::text[], %(serials)s::text[], %(charges)s::int[])
         WITH ORDINALITY AS v(code, serial, charge, n)
    RETURNING 1
), equipment AS (
    INSERT INTO $S."EQUIPMENT" ({_EQUIPMENT_COLUMNS})
    SELECT d."SITE_ID", v.serial, d."ACCOUNT_NO", v.kind, v.mac, v.model, 'I', $TODAY, 0, $NEW
    FROM d CROSS JOIN unnest(%(serials)s::text[], %(kinds)s::text[], %(macs)s::text[],
                             %(models)s::text[]) AS v(serial, kind, mac, model)
    WHERE v.serial IS NOT NULL
    RETURNING 1
)
SELECT (SELECT count(*) FROM premise), (SELECT count(*) FROM opened),
       (SELECT count(*) FROM services), (SELECT count(*) FROM wo), (SELECT count(*) FROM lines),
       (SELECT count(*) FROM equipment), (SELECT rtrim(max("ACCOUNT_NO")) FROM opened)""",
    "trouble_call": f"""
WITH a AS ({_OPEN_ACCOUNT}), d AS (
    SELECT a."SITE_ID", a."ACCOUNT_NO", {_next("WORK_ORDER", "WO_NO")} + 1 AS wo_no FROM a
), wo AS (
    INSERT INTO $S."WORK_ORDER" ({_WORK_ORDER_COLUMNS})
    SELECT "SITE_ID", wo_no, "ACCOUNT_NO", 'TC', 'O', {in_days(1)}, 0, NULL,
           %(remarks)s, $NEW FROM d RETURNING 1
), line AS (
    INSERT INTO $S."WO_LINE" ({_WO_LINE_COLUMNS})
    SELECT "SITE_ID", wo_no, 1, NULL, 'S', NULL, 0, $NEW FROM d RETURNING 1
)
SELECT (SELECT count(*) FROM wo), (SELECT count(*) FROM line)""",
    "complete_work_order": """
WITH done AS (
    UPDATE $S."WORK_ORDER" SET "WO_STATUS" = 'C', "COMPLETE_DATE" = $TODAY, "TECH_ID" = %(tech)s,
        $STAMP
    WHERE ("SITE_ID", "WO_NO") = (
        SELECT w."SITE_ID", w."WO_NO" FROM $S."WORK_ORDER" w
        WHERE w."SITE_ID" = %(site)s AND w."WO_STATUS" IN ('O', 'S')
          AND w."WO_NO" > (SELECT max(m."WO_NO") FROM $S."WORK_ORDER" m
                           WHERE m."SITE_ID" = %(site)s) - 200
        ORDER BY w."WO_NO" LIMIT 1)
    RETURNING 1
)
SELECT count(*) FROM done""",
    "swap_equipment": f"""
WITH old AS (
    UPDATE $S."EQUIPMENT" SET "EQ_STATUS" = 'R', "REMOVE_DATE" = $TODAY, $STAMP
    WHERE ("SITE_ID", "SERIAL_NO") = (
        SELECT e."SITE_ID", e."SERIAL_NO" FROM $S."EQUIPMENT" e
        WHERE e."SITE_ID" = %(site)s AND e."ACCOUNT_NO" = %(account)s AND e."EQ_STATUS" = 'I'
        ORDER BY e."SERIAL_NO" LIMIT 1)
    RETURNING "SITE_ID", "ACCOUNT_NO", "EQUIP_TYPE", "MAC_ADDR", "MODEL"
), new AS (
    INSERT INTO $S."EQUIPMENT" ({_EQUIPMENT_COLUMNS})
    SELECT "SITE_ID", %(serial)s, "ACCOUNT_NO", "EQUIP_TYPE",
           CASE WHEN "MAC_ADDR" IS NULL THEN NULL ELSE %(mac)s END, "MODEL", 'I', $TODAY, 0, $NEW
    FROM old RETURNING 1
)
SELECT (SELECT count(*) FROM old), (SELECT count(*) FROM new)""",
    "collections_step": f"""
WITH a AS ({_OWING_ACCOUNT}), d AS (
    SELECT a.*, COALESCE((SELECT max(c."COLL_SEQ") FROM $S."COLL_ACTIVITY" c
                          WHERE c."SITE_ID" = a."SITE_ID" AND c."ACCOUNT_NO" = a."ACCOUNT_NO"),
                         0) AS seq
    FROM a
), step AS (
    SELECT d.*, (ARRAY['L1', 'L2', 'CL', 'SU'])[1 + mod(d.seq, 4)] AS code FROM d
), added AS (
    INSERT INTO $S."COLL_ACTIVITY" ({_COLL_COLUMNS})
    SELECT "SITE_ID", "ACCOUNT_NO", seq + 1, code, $TODAY, "AR_BALANCE", $NEW FROM step
    RETURNING 1
), account AS (
    UPDATE $S."ACCOUNT" x SET "ACCT_STATUS" = CASE WHEN step.code = 'SU' THEN 'S'
                                                 ELSE x."ACCT_STATUS" END, $STAMP
    FROM step WHERE x."SITE_ID" = step."SITE_ID" AND x."ACCOUNT_NO" = step."ACCOUNT_NO"
    RETURNING 1
)
SELECT (SELECT count(*) FROM added), (SELECT count(*) FROM account)""",
    "restore_account": f"""
WITH a AS (
    SELECT x."SITE_ID", x."ACCOUNT_NO", x."AR_BALANCE" FROM $S."ACCOUNT" x
    WHERE x."SITE_ID" = %(site)s AND x."ACCOUNT_NO" >= %(account)s AND x."ACCT_STATUS" = 'S'
      AND x."REC_STATUS" = 'A'
    ORDER BY x."ACCOUNT_NO" LIMIT 1 FOR UPDATE
), account AS (
    UPDATE $S."ACCOUNT" x SET "ACCT_STATUS" = 'A', $STAMP FROM a
    WHERE x."SITE_ID" = a."SITE_ID" AND x."ACCOUNT_NO" = a."ACCOUNT_NO" RETURNING 1
), added AS (
    INSERT INTO $S."COLL_ACTIVITY" ({_COLL_COLUMNS})
    SELECT a."SITE_ID", a."ACCOUNT_NO",
           1 + COALESCE((SELECT max(c."COLL_SEQ") FROM $S."COLL_ACTIVITY" c
                         WHERE c."SITE_ID" = a."SITE_ID" AND c."ACCOUNT_NO" = a."ACCOUNT_NO"), 0),
           'CU', $TODAY, greatest(a."AR_BALANCE", 0), $NEW FROM a
    RETURNING 1
)
SELECT (SELECT count(*) FROM account), (SELECT count(*) FROM added)""",
    "close_account": f"""
WITH a AS ({_OPEN_ACCOUNT}), account AS (
    UPDATE $S."ACCOUNT" x SET "ACCT_STATUS" = 'C', $STAMP FROM a
    WHERE x."SITE_ID" = a."SITE_ID" AND x."ACCOUNT_NO" = a."ACCOUNT_NO" RETURNING 1
), services AS (
    UPDATE $S."CUST_SERVICE" c SET "SVC_STATUS" = 'D', "STOP_DATE" = $TODAY, $STAMP FROM a
    WHERE c."SITE_ID" = a."SITE_ID" AND c."ACCOUNT_NO" = a."ACCOUNT_NO" AND c."SVC_STATUS" = 'A'
    RETURNING 1
), wo AS (
    INSERT INTO $S."WORK_ORDER" ({_WORK_ORDER_COLUMNS})
    SELECT a."SITE_ID", {_next("WORK_ORDER", "WO_NO")} + 1, a."ACCOUNT_NO", 'DC', 'O', {in_days(1)},
           0, NULL, NULL, $NEW FROM a RETURNING 1
)
SELECT (SELECT count(*) FROM account), (SELECT count(*) FROM services),
       (SELECT count(*) FROM wo)""",
    "update_account_profile": """
WITH account AS (
    UPDATE $S."ACCOUNT" x SET "ACCT_NAME" = %(name)s, "CREDIT_CLASS" = %(credit)s,
        "PIN" = COALESCE(%(pin)s, x."PIN"), $STAMP
    WHERE $ACCT AND x."REC_STATUS" = 'A'
    RETURNING 1
)
SELECT count(*) FROM account""",
    "update_premise": """
WITH premise AS (
    UPDATE $S."PREMISE" p SET "NODE_ID" = %(node)s, $STAMP FROM $S."ACCOUNT" x
    WHERE $ACCT AND p."SITE_ID" = x."SITE_ID" AND p."PREMISE_ID" = x."PREMISE_ID"
    RETURNING 1
)
SELECT count(*) FROM premise""",
    "rate_change": """
WITH rate AS (
    UPDATE $S."SERVICE_CODE"
    SET "RATE" = LEAST(GREATEST(round("RATE" * %(factor)s::numeric)::int, 100), 99999),
        "EFF_DATE" = $TODAY, $STAMP
    WHERE "SITE_ID" = %(site)s AND "SERVICE_CODE" = %(code)s
    RETURNING 1
)
SELECT count(*) FROM rate""",
    "purge_usage": """
WITH purged AS (
    DELETE FROM $S."USAGE_EVENT"
    WHERE "SITE_ID" = %(site)s
      AND "EVENT_NO" = (SELECT floor(max(m."EVENT_NO") * %(fraction)s::float8)::bigint
                        FROM $S."USAGE_EVENT" m WHERE m."SITE_ID" = %(site)s)
    RETURNING 1
)
SELECT count(*) FROM purged""",
}

"""A batch with too many bad rows (8 of 8: over the payment threshold) fails whole: it does
not advance the watermark and names the problem. Fewer bad rows go to quarantine
(test_quarantine.py)."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from billing_sync.postgres import DatabaseUrls
from billing_sync.simulator.clock import ICOMS_STAMP_SET
from billing_sync.validate.report import BatchValidationError
from billing_sync_tests.integration.helpers import (
    drained_engine,
    next_second,
)

pytestmark = pytest.mark.integration


def test_bad_batch_fails_and_keeps_the_watermark(databases: DatabaseUrls, tmp_path: Path) -> None:
    with drained_engine(databases, tmp_path, accounts=30, capture={"delay_seconds": 0}) as engine:
        payment = engine.catalogs[0].by_table["PAYMENT"]
        before = engine.warehouse.watermark("icoms", payment)
        with psycopg.connect(databases.source, autocommit=True) as conn:
            conn.execute(
                f'UPDATE "icoms"."PAYMENT" SET "AMOUNT" = -5, {ICOMS_STAMP_SET}'
                ' WHERE ("SITE_ID", "PAYMENT_NO") IN'
                ' (SELECT "SITE_ID", "PAYMENT_NO" FROM "icoms"."PAYMENT" ORDER BY 1, 2 LIMIT 8)'
            )
            bad = conn.execute(
                'SELECT "SITE_ID" || \'|\' || "PAYMENT_NO" FROM "icoms"."PAYMENT"'
                ' WHERE "AMOUNT" < 0 ORDER BY 1'
            ).fetchall()
        next_second()
        with pytest.raises(BatchValidationError) as failure:
            engine.sync_table(engine.catalogs[0], payment)
        message = str(failure.value)
        assert "payment" in message
        assert "expect_column_values_to_be_between" in message
        assert "amount" in message
        assert all(key in message for (key,) in bad[:5])  # up to five sample keys
        assert engine.warehouse.watermark("icoms", payment) == before

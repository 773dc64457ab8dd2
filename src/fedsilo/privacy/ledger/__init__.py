"""The privacy ledger: every silo's charges, append-only, hash-chained, in SQLite.

The hub keeps one: its policy gate asks ``PrivacyLedger.would_exceed`` before an update
is aggregated, charges the admitted update, and acknowledges it when the round closes.
``fedsilo ledger show`` renders it with ``ledger_table`` / ``ledger_report``.
"""

from ._chain import ChainHead as ChainHead
from ._chain import LedgerIntegrityError as LedgerIntegrityError
from ._ledger import BudgetCheck as BudgetCheck
from ._ledger import Charge as Charge
from ._ledger import LedgerConflict as LedgerConflict
from ._ledger import PrivacyLedger as PrivacyLedger
from ._ledger import SpendProjection as SpendProjection
from ._ledger import release_key as release_key
from ._ledger import run_name as run_name
from ._render import describe_mechanism as describe_mechanism
from ._render import ledger_report as ledger_report
from ._render import ledger_table as ledger_table

__all__ = [
    "BudgetCheck",
    "ChainHead",
    "Charge",
    "LedgerConflict",
    "LedgerIntegrityError",
    "PrivacyLedger",
    "SpendProjection",
    "describe_mechanism",
    "ledger_report",
    "ledger_table",
    "release_key",
    "run_name",
]

"""The CDNOW purchase log: every purchase of a cohort of new customers over 18 months.

CDNOW was an online CD store. The *CDNOW master* data set (Fader and Hardie; see Fader, Hardie
and Lee 2005, "Counting your customers the easy way", Marketing Science 24(2)) holds every
purchase, from January 1997 to the end of June 1998, of the 23,570 customers who made their first
purchase at CDNOW in the first quarter of 1997: 69,659 transactions. The package ships the file
as distributed, ``cdnow_master.txt.gz`` (405 KB), whitespace separated with four columns:

==================  ==========================================================
``customer_id``     customer number, 1 to 23,570
``date``            transaction date, ``YYYYMMDD``
``number_of_cds``   CDs bought
``dollar_value``    amount paid, dollars (80 transactions are worth $0.00)
==================  ==========================================================

:func:`load_cdnow` reads it with the ``cdnow`` preset of
:data:`~rec_env.fitting.purchase_log.LOG_PRESETS`;
``recenv profiles fit cdnow`` fits the shipped ``cdnow`` population to it.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from rec_env.fitting.purchase_log import PurchaseLog, read_purchase_log

__all__ = ["CDNOW_FILE", "cdnow_path", "load_cdnow"]

CDNOW_FILE = "cdnow_master.txt.gz"
"""File name of the shipped copy inside ``rec_env.datasets``."""


def cdnow_path() -> Path:
    """Path of the shipped CDNOW master file."""
    return Path(str(resources.files("rec_env.datasets") / CDNOW_FILE))


def load_cdnow() -> PurchaseLog:
    """The CDNOW transactions, validated (69,659 rows, 23,570 customers)."""
    return read_purchase_log(cdnow_path(), "cdnow")

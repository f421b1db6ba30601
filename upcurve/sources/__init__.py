"""Where data comes in: a folder of files, or the tables of a database any Ibis URL names;
connectors plug in here.

A source hands the rest of upcurve the contract's tables, checked, cut at the as-of date and held by the
computing engine (:class:`LoadedData`).
"""

from upcurve.sources.connection import (
    check_connection,
    check_in_place,
    computes_in_place,
    is_connection_url,
    load_connection,
    load_in_place,
    redacted,
)
from upcurve.sources.folder import LoadedData, as_of_bounds, check_folder, folder_fingerprint, load_folder

__all__ = ["LoadedData", "as_of_bounds", "check_connection", "check_folder", "check_in_place", "computes_in_place",
           "folder_fingerprint", "is_connection_url", "load_connection", "load_folder", "load_in_place", "redacted"]

"""Where data comes in: a folder of files today; tables in an Ibis connection and connectors plug in here.

A source hands the rest of upcurve the contract's tables, checked, cut at the as-of date and held by the
computing engine (:class:`LoadedData`).
"""

from upcurve.sources.folder import LoadedData, as_of_bounds, check_folder, folder_fingerprint, load_folder

__all__ = ["LoadedData", "as_of_bounds", "check_folder", "folder_fingerprint", "load_folder"]

"""Why a dataset is not available: one type the loaders, the envs and the command line all catch."""


class DatasetNotFoundError(FileNotFoundError):
    """A dataset split is not in the data root; the message says where we looked and how to get it."""


class DownloadError(DatasetNotFoundError, RuntimeError):
    """Downloading a dataset failed (no network, a bad mirror, a checksum mismatch), so it is still missing.
    Also a RuntimeError, the type the download raised before."""

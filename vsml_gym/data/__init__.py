"""Data layer: where datasets live, what they are, and reading/downloading them as tensors."""

from vsml_gym.data.catalog import DATASETS, DatasetInfo
from vsml_gym.data.download import download_dataset
from vsml_gym.data.errors import DatasetNotFoundError, DownloadError
from vsml_gym.data.loaders import LabelledImages, SplitStatus, dataset_status, load_split
from vsml_gym.data.root import resolve_data_root

__all__ = [
    "DATASETS",
    "DatasetInfo",
    "DatasetNotFoundError",
    "DownloadError",
    "LabelledImages",
    "SplitStatus",
    "dataset_status",
    "download_dataset",
    "load_split",
    "resolve_data_root",
]

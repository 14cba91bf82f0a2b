"""`vsml-gym data list | download`: see and fetch the datasets of the suite."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict

from vsml_gym.commands.table import format_table, human_size
from vsml_gym.data import DATASETS, dataset_status, download_dataset, resolve_data_root


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    data = subparsers.add_parser("data", help="list or download datasets",
                                 description="List the datasets of the suite or download them (with checksums).")
    actions = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")

    listing = actions.add_parser("list", help="show which dataset splits are present, where, and their sizes",
                                 description="Show every dataset split: present (its files pass the checks made "
                                             "before decoding: headers, sizes, labels, md5s where known), "
                                             "MISSING or CORRUPT (with the reason).")
    listing.add_argument("--data-root", help="dataset folder (default: $VSML_GYM_DATA, else the user cache)")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    listing.set_defaults(run=run_list)

    download = actions.add_parser("download", help="download a dataset (all splits), verifying checksums")
    download.add_argument("name", choices=[*DATASETS, "all"], help="dataset name, or 'all'")
    download.add_argument("--data-root", help="dataset folder (default: $VSML_GYM_DATA, else the user cache)")
    download.add_argument("--mirror", help="base URL of a mirror holding the official files")
    download.set_defaults(run=run_download)


def run_list(args: argparse.Namespace) -> int:
    rows = dataset_status(args.data_root)
    if args.json:
        print(json.dumps([{**asdict(r), "path": str(r.path)} for r in rows], indent=2))
        return 0
    print(f"data root: {resolve_data_root(args.data_root)}\n")
    table = [
        (r.name, r.split, "yes" if r.present else "CORRUPT" if r.problem else "MISSING",
         r.num_examples if r.num_examples is not None else "-", human_size(r.size_bytes) if r.present else "-",
         r.format if r.present else "-", r.path)
        for r in rows
    ]
    print(format_table(("dataset", "split", "present", "examples", "size", "format", "path"), table))
    for r in rows:
        if r.problem:
            print(f"\n{r.name} {r.split}: {r.problem}")
    missing = sorted({r.name for r in rows if not r.present})
    if missing:
        print(f"\nget a missing dataset with: vsml-gym data download NAME, after deleting any corrupt files "
              f"(missing: {', '.join(missing)})")
    return 0


def run_download(args: argparse.Namespace) -> int:
    names = list(DATASETS) if args.name == "all" else [args.name]
    for name in names:
        folder = download_dataset(name, args.data_root, mirror=args.mirror)
        print(f"{name}: ready in {folder}")
    return 0

"""Result tables: the one CSV writer of validation and ``srflow-measure``, and the writer of text (markdown)
reports."""
import csv
import os
from os import path as osp

__all__ = ['write_csv', 'write_text']


def write_csv(rows, path, columns=None, decimals=None, exact=()):
    """Write dict rows as CSV; a missing value is an empty cell.

    Args:
        rows (list[dict]): The rows.
        path (str): The CSV file (its folder is created).
        columns (list[str] | None): Column order. Default: the keys of all rows, in first-seen order.
        decimals (int | None): Round floats to this many decimals; None writes them in full.
        exact (Iterable[str]): Columns written as they are even when ``decimals`` is given (e.g. a temperature).

    Raises:
        OSError: naming the file when it cannot be written.
    """
    if columns is None:
        columns = list(dict.fromkeys(key for row in rows for key in row))

    def cell(key, value):
        if isinstance(value, float) and decimals is not None and key not in exact:
            return f'{value:.{decimals}f}'
        return value

    try:
        os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
        with open(path, 'w', newline='') as f:
            writer = csv.DictWriter(f, fieldnames=columns)
            writer.writeheader()
            for row in rows:
                writer.writerow({key: cell(key, row.get(key, '')) for key in columns})
    except OSError as error:
        raise OSError(f'Cannot write the table {path}: {error.strerror or error}') from error


def write_text(text, path):
    """Write a text (markdown) report, creating its folder.

    Raises:
        OSError: naming the file when it cannot be written.
    """
    try:
        os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
        with open(path, 'w') as f:
            f.write(text)
    except OSError as error:
        raise OSError(f'Cannot write the report {path}: {error.strerror or error}') from error

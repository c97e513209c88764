"""LMDB image databases: checked when a dataset is built, so that a damaged one is an error naming it and the key,
not a ``Bus error`` or a ``'NoneType' object has no attribute 'astype'`` in the middle of training.

- :func:`write_checksums`: ``srflow-prepare-data`` stores a CRC-32 of every value in ``<lmdb>/checksums.txt``.
- :func:`check_lmdb`: ``data.mdb`` must be as long as its pages say (a truncated file is read through a memory map,
  which kills the process with SIGBUS); every key of ``meta_info.txt`` must be present, with BasicSR's key rule
  (the name up to its first dot) unique; each value must match its checksum when the LMDB has them, else start like
  an image file (PNG or JPEG signature).
"""
import zlib
from os import path as osp

__all__ = ['CHECKSUMS', 'lmdb_keys', 'write_checksums', 'check_lmdb']

CHECKSUMS = 'checksums.txt'
_SIGNATURES = (b'\x89PNG\r\n\x1a\n', b'\xff\xd8\xff')


def lmdb_keys(lmdb_path):
    """The keys of ``<lmdb>/meta_info.txt`` as BasicSR reads them (each line's name up to its first dot)."""
    meta = osp.join(lmdb_path, 'meta_info.txt')
    if not osp.isfile(meta):
        raise FileNotFoundError(f'LMDB {lmdb_path} has no meta_info.txt (BasicSR lists its keys there).')
    with open(meta, encoding='utf-8') as f:
        return [line.split('.')[0] for line in f if line.strip()]


def _open(lmdb_path):
    import lmdb
    data = osp.join(lmdb_path, 'data.mdb')
    if not osp.isfile(data):
        raise FileNotFoundError(f'LMDB {lmdb_path} has no data.mdb.')
    try:
        env = lmdb.open(lmdb_path, readonly=True, lock=False, readahead=False, subdir=True)
    except lmdb.Error as error:
        raise OSError(f'Cannot open LMDB {lmdb_path}: {error}') from error
    size, needed = osp.getsize(data), (env.info()['last_pgno'] + 1) * env.stat()['psize']
    if size < needed:
        env.close()
        raise OSError(f'LMDB {lmdb_path}: data.mdb is truncated ({size} bytes; its pages need {needed}). Rebuild it '
                      '(srflow-prepare-data) or copy it again.')
    return env


def write_checksums(lmdb_path):
    """Writes ``<lmdb>/checksums.txt``: ``<key>\\t<crc32>`` for every key of ``meta_info.txt``."""
    env = _open(lmdb_path)
    try:
        with env.begin(buffers=True) as txn, open(osp.join(lmdb_path, CHECKSUMS), 'w', encoding='utf-8') as f:
            for key in lmdb_keys(lmdb_path):
                f.write(f'{key}\t{zlib.crc32(txn.get(key.encode("ascii")))}\n')
    finally:
        env.close()


def _read_checksums(lmdb_path):
    path = osp.join(lmdb_path, CHECKSUMS)
    if not osp.isfile(path):
        return None
    with open(path, encoding='utf-8') as f:
        return {key: int(crc) for key, _, crc in (line.rstrip('\n').partition('\t') for line in f) if key}


def check_lmdb(lmdb_path):
    """Checks one LMDB of images (see the module's doc) without reading past the end of ``data.mdb``.

    Returns:
        int: the number of keys checked.

    Raises:
        FileNotFoundError / OSError / ValueError: naming the LMDB and, for a value, its key.
    """
    keys = lmdb_keys(lmdb_path)
    seen = set()
    for key in keys:
        if key in seen:
            raise ValueError(f'LMDB {lmdb_path}: key {key!r} is listed twice in meta_info.txt (BasicSR cuts names at '
                             'their first dot, so two images would be one).')
        seen.add(key)
    checksums = _read_checksums(lmdb_path)
    env = _open(lmdb_path)
    try:
        with env.begin(buffers=True) as txn:
            for key in keys:
                value = txn.get(key.encode('ascii'))
                if value is None:
                    raise ValueError(f'LMDB {lmdb_path}: key {key!r} of meta_info.txt is missing from data.mdb.')
                if checksums is not None:
                    if key not in checksums or zlib.crc32(value) != checksums[key]:
                        raise ValueError(f'LMDB {lmdb_path}: the bytes of key {key!r} do not match {CHECKSUMS} '
                                         '(corrupt); rebuild the LMDB.')
                elif not bytes(value[:8]).startswith(_SIGNATURES):
                    raise ValueError(f'LMDB {lmdb_path}: the value of key {key!r} is not a PNG or JPEG image.')
    finally:
        env.close()
    return len(keys)

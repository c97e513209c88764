"""Where commands may write: the one path guard every console command goes through before any work.

- :func:`check_outputs`: an output that is, contains or lies inside an input (or another output) is refused, with
  the options at fault named, so that no command can overwrite, delete or re-read what it was given.
- :func:`path_component`: a name that the plugin turns into a path (experiment, dataset and image names, suffixes,
  LMDB keys) is one path component: not empty, no ``/`` or ``\\``, not ``.`` or ``..``, no NUL; so nothing is
  written outside the output folders.
- :func:`owned` / :func:`mark_owned`: ``--overwrite`` replaces only what the command wrote itself: it lists each
  output it creates in ``.srflow-outputs`` beside it (not inside, where datasets list their images), and only
  listed outputs may be replaced.
"""
import os
from os import path as osp

__all__ = ['path_component', 'check_outputs', 'OWNER_MANIFEST', 'mark_owned', 'owned']

OWNER_MANIFEST = '.srflow-outputs'


def path_component(value, what):
    """``value`` (a string used as a file or folder name) checked to be a single path component.

    Args:
        value: The name.
        what (str): What it is, for the error (an option such as ``'datasets.val.name'``, or an image file).

    Returns:
        str: ``value``.

    Raises:
        ValueError: naming ``what`` and the value.
    """
    text = str(value)
    if not text or text in ('.', '..') or any(c in text for c in ('/', '\\', '\0')):
        raise ValueError(f"{what} = {text!r}: must be one file or folder name (not empty, no '/' or '\\', "
                         "not '.' or '..'), as it becomes part of an output path.")
    return text


def _real(path):
    return osp.realpath(osp.abspath(os.fspath(path)))


def _inside(path, folder):
    """Whether ``path`` is ``folder`` or lies inside it (both real paths)."""
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def check_outputs(outputs, inputs):
    """Refuses an output path that is, contains or lies inside an input path, or two outputs of which one is or
    lies inside the other. Paths are compared after resolving symbolic links; missing paths count as they would be.

    Args:
        outputs (dict[str, str]): What the command writes, by the option that names it (``'-o'``,
            ``'--grid_dir'``); None values are skipped.
        inputs (dict[str, str | list[str]]): What it reads, by option; None values are skipped.

    Raises:
        ValueError: naming both options and both paths.
    """
    outs = [(name, p, _real(p)) for name, p in outputs.items() if p is not None]
    ins = [(name, p, _real(p)) for name, value in inputs.items() if value is not None
           for p in ([value] if isinstance(value, (str, os.PathLike)) else value)]
    for out_name, out, real_out in outs:
        for in_name, inp, real_in in ins:
            if real_out == real_in:
                how = 'is'
            elif _inside(real_out, real_in):
                how = 'lies inside'
            elif _inside(real_in, real_out):
                how = 'contains'
            else:
                continue
            raise ValueError(f'Output {out_name} {out} {how} the input {in_name} {inp}: outputs must lie outside '
                             'every input (nothing given to a command is overwritten, deleted or read back as its '
                             'own output).')
    for i, (name_a, a, real_a) in enumerate(outs):
        for name_b, b, real_b in outs[i + 1:]:
            if _inside(real_a, real_b) or _inside(real_b, real_a):
                raise ValueError(f'Outputs {name_a} {a} and {name_b} {b} overlap: each needs a place of its own.')


def _manifest(path):
    return osp.join(osp.dirname(_real(path)), OWNER_MANIFEST)


def _entries(manifest):
    if not osp.isfile(manifest):
        return set()
    with open(manifest, encoding='utf-8') as f:
        return {tuple(line.rstrip('\n').split('\t', 1)) for line in f if '\t' in line}


def _write_entries(manifest, entries):
    if not entries:
        if osp.isfile(manifest):
            os.remove(manifest)
        return
    with open(manifest, 'w', encoding='utf-8') as f:
        f.writelines(f'{c}\t{name}\n' for c, name in sorted(entries))


def mark_owned(path, command, owned_now=True):
    """Records in ``<parent folder>/.srflow-outputs`` that ``command`` wrote ``path`` (a file or folder); with
    ``owned_now=False`` takes the record back (the output was removed), and the file with its last record."""
    manifest = _manifest(path)
    entry = (command, osp.basename(_real(path)))
    entries = _entries(manifest)
    _write_entries(manifest, entries | {entry} if owned_now else entries - {entry})


def owned(path, command):
    """Whether ``command`` recorded ``path`` as its own output (see :func:`mark_owned`)."""
    return (command, osp.basename(_real(path))) in _entries(_manifest(path))

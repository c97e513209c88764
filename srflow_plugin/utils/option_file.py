"""Option files: the one YAML loader for every option file the plugin reads, and for BasicSR's ``parse_options``
(through :mod:`srflow_plugin.utils.basicsr_compat`).

It builds plain data only (PyYAML's safe loader: a ``!!python/...`` tag is an error, never code), with mappings read
as ``OrderedDict`` (as BasicSR expects), and it refuses, in one line naming the file:

- a key given twice in one mapping (``total_iter: 6`` then ``total_iter: 4``: YAML would silently keep the last);
- aliases that expand beyond :data:`MAX_OPTION_VALUES` values (nine levels of nine aliases expand to 387 million,
  which BasicSR's ``dict2str`` and ``deepcopy`` would try to build);
- a document that is empty, or not a mapping of options (a list, a scalar).
"""
from collections import OrderedDict
from os import path as osp

import yaml

__all__ = ['MAX_OPTION_VALUES', 'OptionLoader', 'read_option_file']

# values (mappings, lists, scalars) of an option file with its aliases expanded; the option files of this project
# have a few hundred
MAX_OPTION_VALUES = 10000


def _expanded_values(root):
    """How many nodes the document has with every alias expanded (a shared node counted each time it is used)."""
    sizes = {}

    def size(node):
        if id(node) in sizes:
            return sizes[id(node)]
        sizes[id(node)] = 1  # a recursive alias counts once
        if isinstance(node, yaml.SequenceNode):
            total = 1 + sum(size(child) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            total = 1 + sum(size(key) + size(value) for key, value in node.value)
        else:
            total = 1
        sizes[id(node)] = total
        return total

    return size(root)


class OptionLoader(yaml.SafeLoader):
    """PyYAML's safe loader with ordered mappings that refuses duplicate keys, alias bombs and documents that are
    not a mapping (see the module's doc)."""

    def _where(self):
        name = getattr(self, 'name', '<string>')  # the file's path when read from a file
        return 'Options' if name.startswith('<') else f'Option file {name}'

    def get_single_data(self):
        node = self.get_single_node()
        if node is None:
            raise ValueError(f'{self._where()} is empty: it must be a mapping of options (name: ..., network_g: ...).')
        values = _expanded_values(node)
        if values > MAX_OPTION_VALUES:
            raise ValueError(f'{self._where()}: its aliases expand to {values} values (at most {MAX_OPTION_VALUES} '
                             'are accepted); write the options out instead of nesting aliases.')
        data = self.construct_document(node)
        if not isinstance(data, dict):
            kind = 'a list' if isinstance(data, list) else f'the single value {data!r}'
            raise ValueError(f'{self._where()} holds {kind}, not a mapping of options (name: ..., network_g: ...).')
        return data

    def construct_ordered_mapping(self, node):
        first_line = {}
        for key_node, _ in node.value:
            if key_node.tag == 'tag:yaml.org,2002:merge':
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                if key in first_line:
                    raise ValueError(f'{self._where()}, line {key_node.start_mark.line + 1}: key {key!r} is given '
                                     f'twice (first on line {first_line[key] + 1}); remove one.')
            except TypeError:  # an unhashable key: construct_pairs reports it as PyYAML does
                continue
            first_line[key] = key_node.start_mark.line
        self.flatten_mapping(node)
        return OrderedDict(self.construct_pairs(node))


OptionLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, OptionLoader.construct_ordered_mapping)


def read_option_file(path):
    """The options of a YAML file (an ``OrderedDict``), read with :class:`OptionLoader`.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: naming the file, when it is not valid YAML or is refused (see the module's doc).
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'Option file {path} does not exist.')
    with open(path, encoding='utf-8') as f:
        try:
            return yaml.load(f, Loader=OptionLoader)
        except yaml.YAMLError as error:
            raise ValueError(f'Option file {path} is not valid YAML: {" ".join(str(error).split())}') from error

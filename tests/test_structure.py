"""The package's layout, as docs/development.md states it: imports between its folders run one way (no circle), the
generic folder (``utils/``) and the library (``inference/``) depend on nothing above them, and no function is longer
than 60 lines. Read from the source with ``ast``, so a function-level import counts as much as one at the top."""
import ast
import os
from os import path as osp

PACKAGE = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'srflow_plugin')
MAX_FUNCTION_LINES = 60


def _modules():
    """(dotted module name, parsed tree) of every module of the package."""
    for folder, _, files in os.walk(PACKAGE):
        for name in sorted(files):
            if name.endswith('.py'):
                path = osp.join(folder, name)
                parts = osp.relpath(path, osp.dirname(PACKAGE))[:-3].split(os.sep)
                if parts[-1] == '__init__':
                    parts = parts[:-1]
                with open(path, encoding='utf-8') as f:
                    yield '.'.join(parts), path.endswith('__init__.py'), ast.parse(f.read(), path)


def _node(module):
    """A sub-package (``srflow_plugin.models``) or, at the top, the module itself (``srflow_plugin.entry``)."""
    parts = module.split('.')
    if len(parts) > 1 and osp.isdir(osp.join(PACKAGE, parts[1])):
        return '.'.join(parts[:2])
    return module if len(parts) <= 2 else '.'.join(parts[:2])


def _imported(module, is_package, node):
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:  # relative: from the module's package upwards
        base = module.split('.')[:len(module.split('.')) - node.level + (1 if is_package else 0)]
        return ['.'.join(base + [node.module] if node.module else base)]
    return [node.module]


def folder_graph():
    """{node: {node it imports: first place it does}} over the package's own imports."""
    graph = {}
    for module, is_package, tree in _modules():
        source = _node(module)
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for target in _imported(module, is_package, node):
                    if target.split('.')[0] == 'srflow_plugin' and _node(target) != source:
                        graph.setdefault(source, {}).setdefault(_node(target), f'{module}:{node.lineno}')
    return graph


def _cycle(graph):
    """One import circle as a list of nodes, or None."""
    state = {}

    def visit(node, trail):
        state[node] = 'open'
        for target in graph.get(node, {}):
            if state.get(target) == 'open':
                return trail[trail.index(target):] + [target]
            if target not in state:
                found = visit(target, trail + [target])
                if found:
                    return found
        state[node] = 'done'
        return None

    for start in sorted(graph):
        if start not in state:
            found = visit(start, [start])
            if found:
                return found
    return None


def test_imports_between_the_package_folders_form_no_circle():
    graph = folder_graph()
    cycle = _cycle(graph)
    assert cycle is None, ' -> '.join(f'{a} ({graph[a][b]})' for a, b in zip(cycle, cycle[1:]))
    # the layers the development guide names: what each folder may lean on
    assert 'srflow_plugin.utils' not in graph  # generic: it leans on no other part of the package
    assert set(graph['srflow_plugin.archs']) == {'srflow_plugin.utils'}
    assert set(graph['srflow_plugin.inference']) <= {'srflow_plugin', 'srflow_plugin.metrics', 'srflow_plugin.utils'}


def test_the_circle_check_finds_a_circle():
    graph = {'a': {'b': 'a.py:1'}, 'b': {'c': 'b.py:1'}, 'c': {'a': 'c.py:1'}, 'd': {'a': 'd.py:1'}}
    assert _cycle(graph) == ['a', 'b', 'c', 'a']
    assert _cycle({'a': {'b': 'a.py:1'}, 'b': {}}) is None


def test_no_function_in_the_package_is_longer_than_60_lines():
    long_functions = [f'{module}.{node.name}: {node.end_lineno - node.lineno + 1} lines'
                      for module, _, tree in _modules() for node in ast.walk(tree)
                      if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
                      and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]
    assert long_functions == []

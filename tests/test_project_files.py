"""The project files agree with the package: CITATION.cff cites this version and the SRFlow paper, and the licence
is the Apache License 2.0 in LICENSE, setup.py and CITATION.cff alike."""
import re
from os import path as osp

import yaml

from srflow_plugin.version import __version__

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def _read(name):
    with open(osp.join(REPO, name), encoding='utf-8') as f:
        return f.read()


def test_citation_cites_this_version_and_prefers_the_srflow_paper():
    citation = yaml.safe_load(_read('CITATION.cff'))
    assert citation['cff-version'] == '1.2.0' and citation['version'] == __version__
    paper = citation['preferred-citation']
    assert paper['title'] == 'SRFlow: Learning the Super-Resolution Space with Normalizing Flow'
    assert paper['year'] == 2020 and paper['url'] == 'https://arxiv.org/abs/2006.14200'
    assert [a['family-names'] for a in paper['authors']] == ['Lugmayr', 'Danelljan', 'Van Gool', 'Timofte']


def test_the_licence_is_apache_2_0_everywhere():
    assert _read('LICENSE').split()[:4] == ['Apache', 'License', 'Version', '2.0,']
    assert re.search(r"license='Apache License 2\.0'", _read('setup.py'))
    assert yaml.safe_load(_read('CITATION.cff'))['license'] == 'Apache-2.0'

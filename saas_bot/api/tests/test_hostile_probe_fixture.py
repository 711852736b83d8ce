"""``bench/hostile_probe.py`` (``make probe-hostile``) makes one object of every kind the API addresses by id.

The probe fuzzes and cross-checks every operation of the live schema against its fixture's objects; an
endpoint added without a fixture object stops it (it did once, with ``KeyError: 'sources'``, unnoticed
because the probe is not part of the suite). This test fails first.
"""
import sys

import pytest

from saas_bot.tests.hostile_inputs import api_operations

pytestmark = pytest.mark.django_db


def test_hostile_probe_has_a_fixture_object_for_every_api_kind(api, settings):
    sys.path.insert(0, str(settings.BASE_DIR / "bench"))
    try:
        import hostile_probe
    finally:
        sys.path.remove(str(settings.BASE_DIR / "bench"))
    operations = api_operations(api.get("/api/schema/", {"format": "json"}).json())
    kinds = {op["path"].split("/")[3] for op in operations if "{id}" in op["path"]}
    assert kinds, "the schema lists no operation on an object"
    missing = sorted(kinds - set(hostile_probe.FIXTURE_KINDS))
    assert not missing, f"add objects of {missing} to bench/hostile_probe.py _fixture() and FIXTURE_KINDS"

"""Real OpenStack client libraries against `drover sim`.

openstacksdk with otcextensions drives SDRS (protection groups, jobs, DR
drills) through the token catalog and version discovery; a keystoneauth
session drives the EVS replication consistency groups, which no SDK models.
Every check that fails is printed; the exit status is the number of them.

Run by `tests/compat/run`, which starts the simulator and makes the venv.
"""

import os
import sys
import time
import traceback

import openstack
from keystoneauth1 import session as ks_session
from keystoneauth1.identity import v3
from otcextensions import sdk as otc_sdk

BASE = os.environ["DROVER_SIM_URL"].rstrip("/")
PROJECT = "0123456789abcdef0123456789abcdef"
REGION = "eu-de"
GROUPS = int(os.environ.get("DROVER_SIM_GROUPS", "25"))

failures = []
passed = 0


def check(name):
    def wrap(fn):
        global passed
        try:
            fn()
            passed += 1
            print(f"ok   {name}")
        except Exception as e:  # noqa: BLE001 - every failure is reported
            failures.append(name)
            print(f"FAIL {name}: {e!r}")
            traceback.print_exc(limit=3)
        return fn

    return wrap


def connect():
    conn = openstack.connect(
        auth_type="password",
        auth={
            "auth_url": f"{BASE}/v3",
            "username": "drover",
            "password": "sim-password",
            "user_domain_name": "drover-sim",
            "project_name": REGION,
            "project_domain_name": "drover-sim",
        },
        region_name=REGION,
    )
    otc_sdk.register_otc_extensions(conn)
    return conn


conn = connect()


def evs_session():
    auth = v3.Password(
        auth_url=f"{BASE}/v3",
        username="drover",
        password="sim-password",
        user_domain_name="drover-sim",
        project_name=REGION,
        project_domain_name="drover-sim",
    )
    return ks_session.Session(auth=auth)


def wait_job(job_id, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = conn.sdrs.get_job(job_id)
        if job.status in ("SUCCESS", "FAIL"):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not end in {timeout}s")


@check("token has a catalog naming every service")
def _():
    catalog = conn.session.auth.get_access(conn.session).service_catalog
    types = {entry["type"] for entry in catalog.catalog}
    assert {"identity", "volumev2", "sdrs"} <= types, types


@check("sdrs endpoint discovered from the catalog")
def _():
    url = conn.sdrs.get_endpoint()
    assert url.rstrip("/").endswith(f"/v1/{PROJECT}"), url


@check("version discovery finds each API at its catalog URL")
def _():
    s = evs_session()
    for service, major, path in (
        ("volumev2", "2", f"/v2/{PROJECT}"),
        ("sdrs", "1", f"/v1/{PROJECT}"),
        ("identity", "3", "/v3"),
    ):
        data = s.get_endpoint_data(
            service_type=service,
            interface="public",
            region_name=REGION,
            min_version=major,
            max_version=f"{major}.latest",
        )
        assert data.api_version[0] == int(major), (service, data.api_version)
        assert data.url.rstrip("/").endswith(path), (service, data.url)


@check("protection groups list whole with a page size smaller than the list")
def _():
    groups = list(conn.sdrs.protection_groups(limit=7))
    ids = [g.id for g in groups]
    assert len(ids) == GROUPS, (len(ids), GROUPS)
    assert len(set(ids)) == len(ids), "a group was listed twice"


@check("protection groups filter by status, name and query_type")
def _():
    assert len(list(conn.sdrs.protection_groups(status="protected"))) == GROUPS
    assert list(conn.sdrs.protection_groups(status="available")) == []
    named = list(conn.sdrs.protection_groups(name="pg-pg0003"))
    assert [g.id for g in named] == ["pg0003"], [g.id for g in named]
    assert list(conn.sdrs.protection_groups(query_type="status_abnormal")) == []
    assert len(list(conn.sdrs.protection_groups(query_type="general"))) == GROUPS


@check("a protection group reads with its fields")
def _():
    pg = conn.sdrs.get_protection_group("pg0001")
    assert pg.status == "protected", pg.status
    assert pg.priority_station == "source", pg.priority_station
    assert pg.source_availability_zone and pg.target_availability_zone


@check("rename a protection group")
def _():
    pg = conn.sdrs.update_protection_group("pg0002", name="renamed-pg")
    assert pg.name == "renamed-pg", pg.name
    assert conn.sdrs.get_protection_group("pg0002").name == "renamed-pg"


@check("planned failover runs as a job and moves production")
def _():
    # otcextensions answers group actions with the raw response.
    response = conn.sdrs.perform_planned_failover("pg0001", priority_station="target")
    assert response.status_code == 200, response.text
    done = wait_job(response.json()["job_id"])
    assert done.status == "SUCCESS", done
    pg = conn.sdrs.get_protection_group("pg0001")
    assert pg.priority_station == "target", pg.priority_station


@check("DR drill: create, list, rename, delete")
def _():
    job = conn.sdrs.create_dr_drill(server_group_id="pg0003", name="drill-compat")
    assert wait_job(job.job_id).status == "SUCCESS"
    drills = list(conn.sdrs.dr_drills(server_group_id="pg0003"))
    assert [d.name for d in drills] == ["drill-compat"], drills
    renamed = conn.sdrs.update_dr_drill(drills[0].id, name="drill-renamed")
    assert renamed.name == "drill-renamed", renamed.name
    assert conn.sdrs.get_dr_drill(drills[0].id).name == "drill-renamed"
    # The SDK's delete reads no body, so the job id is lost: wait for the
    # drill to leave the list instead.
    conn.sdrs.delete_dr_drill(drills[0].id, ignore_missing=False)
    deadline = time.monotonic() + 30
    while list(conn.sdrs.dr_drills(server_group_id="pg0003")):
        assert time.monotonic() < deadline, "the drill was not deleted"
        time.sleep(0.2)


@check("a refused action raises with the SDRS error")
def _():
    response = conn.sdrs.enable_protection("pg0004")
    assert response.status_code == 400, response.status_code
    error = next(iter(response.json().values()))
    assert error["code"] == "SDRS.1002", error


EVS = {"service_type": "volumev2", "interface": "public", "region_name": REGION}
GROUPS_PATH = "/os-vendor-replication-consistency-groups"


@check("EVS groups list through a keystoneauth session and the catalog")
def _():
    s = evs_session()
    body = s.get(GROUPS_PATH, endpoint_filter=EVS).json()
    assert len(body["replication_consistency_groups"]) == GROUPS, body


@check("EVS groups page by marker and filter by priority_station")
def _():
    s = evs_session()
    seen, marker = [], None
    while True:
        query = {"limit": 4}
        if marker:
            query["marker"] = marker
        page = s.get(GROUPS_PATH, endpoint_filter=EVS, params=query).json()[
            "replication_consistency_groups"
        ]
        if not page:
            break
        seen += [g["id"] for g in page]
        marker = page[-1]["id"]
    assert len(seen) == GROUPS and len(set(seen)) == GROUPS, seen
    moved = s.get(GROUPS_PATH, endpoint_filter=EVS, params={"priority_station": "eu-de-02"})
    assert moved.json()["replication_consistency_groups"] == []
    home = s.get(GROUPS_PATH, endpoint_filter=EVS, params={"priority_station": "eu-de-01"})
    assert len(home.json()["replication_consistency_groups"]) == GROUPS


@check("EVS switchover reverses the group")
def _():
    s = evs_session()
    url = f"{GROUPS_PATH}/g0001/action"
    s.post(url, endpoint_filter=EVS, json={"os-reverse-replication-consistency-group": None})
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        g = s.get(f"{GROUPS_PATH}/g0001", endpoint_filter=EVS).json()[
            "replication_consistency_group"
        ]
        if g["status"] == "available" and g["priority_station"] == "eu-de-02":
            assert "failure_detail" in g, g
            return
        time.sleep(0.2)
    raise AssertionError(f"g0001 did not move: {g}")


@check("a failed job carries the code of its operation")
def _():
    control = ks_session.Session()
    r = control.post(f"{BASE}/_sim/sdrs/groups", json={"id": "pg-fails"})
    assert r.status_code == 201, r.status_code
    control.patch(f"{BASE}/_sim/sdrs/groups/pg-fails", json={"fail_next": True})
    response = conn.sdrs.perform_failover("pg-fails")
    done = wait_job(response.json()["job_id"])
    assert done.status == "FAIL", done.status
    assert done.error_code == "SDRS.1030", done.error_code
    assert conn.sdrs.get_protection_group("pg-fails").status == "error-failing-over"


@check("a gateway error names the request id in body and header")
def _():
    s = ks_session.Session()
    r = s.get(f"{BASE}/v2/{PROJECT}{GROUPS_PATH}", raise_exc=False,
              headers={"X-Auth-Token": "not-a-token"})
    assert r.status_code == 401, r.status_code
    body = r.json()
    header = r.headers.get("X-Request-Id")
    assert header and body.get("request_id") == header, (body, header)


print(f"{passed} passed, {len(failures)} failed")
sys.exit(len(failures))

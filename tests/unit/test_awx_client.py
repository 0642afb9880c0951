"""The AWX client against a tiny local server that answers as AWX (or the gateway or proxy in
front of it) may: ``next`` links absolute or below a prefix, AAP 2.5's ``/api/controller``,
5xx, 429 and 503 with ``Retry-After``, answers that are not JSON, redirects, AWX's error
bodies, a sliced template's workflow job, events saved out of counter order."""

from __future__ import annotations

import time
from collections.abc import Iterator
from itertools import islice
from typing import Any

import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from terry.appliers.awx import _Stream
from terry.appliers.awx.client import AWXClient, AWXError, LaunchLost
from terry.ports import free_port
from tests.fakes.scripted import Scripted

pytestmark = pytest.mark.unit

TOKEN = "awx-CANARY-unit-token-9876"


@pytest.fixture
def awx() -> Iterator[Scripted]:
    server = Scripted("scripted AWX", lambda: JSONResponse({"detail": "Not found."}, 404))
    server.start()
    yield server
    server.stop()


def client(url: str, slept: list[float] | None = None, retries: int = 3) -> AWXClient:
    return AWXClient(
        url,
        TOKEN,
        retries=retries,
        sleep=(slept.append if slept is not None else lambda _: None),
    )


def page(results: list[dict[str, Any]], next_: str | None = None) -> JSONResponse:
    return JSONResponse(
        {"count": len(results), "next": next_, "previous": None, "results": results}
    )


def template(tid: int = 3, name: str = "terry-x") -> dict[str, Any]:
    return {"id": tid, "type": "job_template", "name": name, "project": 8, "playbook": "p.yml"}


# -- where the API is, and the next links ------------------------------------------------------


def test_absolute_next_links_are_followed_on_awx_url_and_the_token_goes_nowhere_else(
    awx: Scripted,
) -> None:
    # A gateway or an older server may give absolute URLs, here naming an internal host
    # Terry cannot (and must not) reach: only the path and query are followed.
    elsewhere = "http://awx-internal.invalid:8052/api/v2/job_templates/?name=terry-x&page=2"
    awx.on(
        "GET /api/v2/job_templates/",
        lambda r: (
            page([template(3, "other")], elsewhere)
            if r.query_params.get("page") is None
            else page([template(3)])
        ),
    )
    found = client(awx.base_url).template("terry-x")
    assert found.id == 3 and found.project == 8
    assert [r["query"].get("page") for r in awx.requests] == [None, "2"]
    assert all(r["authorization"] == f"Bearer {TOKEN}" for r in awx.requests)


@pytest.mark.parametrize(
    ("prefix", "link"),
    [
        ("/awx", "/awx/api/v2/jobs/1/job_events/?page=2"),  # AWX sees the prefix
        ("/awx", "/api/v2/jobs/1/job_events/?page=2"),  # the proxy strips it
        ("/awx", "?page=2"),  # a bare query, relative to the page read
    ],
)
def test_next_links_below_a_proxy_prefix(awx: Scripted, prefix: str, link: str) -> None:
    awx.on(
        f"GET {prefix}/api/v2/jobs/1/job_events/",
        lambda r: (
            page([{"counter": 1}], link)
            if r.query_params.get("page") is None
            else page([{"counter": 2}])
        ),
    )
    events = list(client(awx.base_url + prefix).events(1, after=0))
    assert [e["counter"] for e in events] == [1, 2]


def test_aap_gateway_url_reaches_the_api_at_api_controller_v2(awx: Scripted) -> None:
    # AAP 2.5 (docs/awx.md: url https://aap.example.org/api/controller): AWX's
    # OPTIONAL_API_URLPATTERN_PREFIX puts the API at /api/controller/v2, and next links there.
    awx.on(
        "GET /api/controller/v2/job_templates/",
        lambda r: (
            page([], "/api/controller/v2/job_templates/?name=terry-x&page=2")
            if r.query_params.get("page") is None
            else page([template(5)])
        ),
    )
    awx.on("GET /api/controller/v2/jobs/5/", JSONResponse({"id": 5, "status": "running"}))
    gateway = client(awx.base_url + "/api/controller/")
    assert gateway.template("terry-x").id == 5
    assert gateway.job(5).status == "running"
    assert client(awx.base_url + "/api/controller/v2").job(5).status == "running"


def test_a_next_link_back_to_a_page_read_ends_the_list(awx: Scripted) -> None:
    awx.on(
        "GET /api/v2/jobs/1/job_host_summaries/",
        page([{"host_name": "web-01"}], "/api/v2/jobs/1/job_host_summaries/?page_size=200"),
    )
    rows = list(islice(client(awx.base_url).pages("/jobs/1/job_host_summaries/?page_size=200"), 5))
    assert rows == [{"host_name": "web-01"}]


# -- retries --------------------------------------------------------------------------------


def test_a_5xx_then_success_is_retried_with_backoff(awx: Scripted) -> None:
    slept: list[float] = []
    awx.on(
        "GET /api/v2/jobs/7/",
        JSONResponse({"detail": "boom"}, 502),
        Response("<html>Bad gateway</html>", 500, media_type="text/html"),
        JSONResponse({"id": 7, "status": "successful", "event_processing_finished": False}),
    )
    state = client(awx.base_url, slept).job(7)
    assert state.finished and not state.events_done
    assert slept == [0.5, 1.0]


def test_retry_after_is_honoured_and_429_retried_even_for_a_launch(awx: Scripted) -> None:
    # A gateway's rate limit (429) did nothing, so even a launch is asked again; a 503's
    # Retry-After is waited for, capped at a minute.
    slept: list[float] = []
    awx.on(
        "POST /api/v2/job_templates/3/launch/",
        JSONResponse({"detail": "Request was throttled."}, 429, headers={"Retry-After": "7"}),
        JSONResponse({"job": 11, "id": 11, "type": "job", "ignored_fields": {}}, 201),
    )
    awx.on(
        "GET /api/v2/jobs/11/",
        JSONResponse({"detail": "maintenance"}, 503, headers={"Retry-After": "3600"}),
        JSONResponse({"id": 11, "status": "pending"}),
    )
    awx_client = client(awx.base_url, slept)
    assert awx_client.launch(3, {"limit": "web-01"}) == (11, {})
    assert awx_client.job(11).status == "pending"
    assert slept == [7.0, 60.0]
    assert len(awx.hits("POST /api/v2/job_templates/3/launch/")) == 2


def test_a_launch_is_never_repeated_after_a_5xx(awx: Scripted) -> None:
    awx.on("POST /api/v2/job_templates/3/launch/", JSONResponse({"detail": "oops"}, 500))
    with pytest.raises(AWXError) as caught:
        client(awx.base_url).launch(3, {})
    assert caught.value.status == 500
    assert len(awx.hits("POST /api/v2/job_templates/3/launch/")) == 1


def test_a_launch_whose_answer_was_lost_says_a_job_may_have_started(awx: Scripted) -> None:
    # A gateway's 5xx or no answer at all: AWX may have made the job. A refusal (4xx) says
    # it did not, and is an ordinary AWXError.
    launch = "POST /api/v2/job_templates/3/launch/"
    awx.on(launch, Response("<html>504 Gateway Time-out</html>", 504))
    with pytest.raises(LaunchLost) as lost:
        client(awx.base_url).launch(3, {})
    assert lost.value.status == 504 and "AWX answered 504" in str(lost.value)
    awx.on(launch, JSONResponse({"limit": ["not valid"]}, 400))
    with pytest.raises(AWXError) as refused:
        client(awx.base_url).launch(3, {})
    assert not isinstance(refused.value, LaunchLost)

    # sent, and no answer within the client's timeout: lost too
    def slow(request: Request) -> Response:
        time.sleep(0.6)
        return JSONResponse({"job": 11, "ignored_fields": {}}, 201)

    awx.on(launch, slow)
    with pytest.raises(LaunchLost) as timed_out:
        AWXClient(awx.base_url, TOKEN, timeout=0.2, retries=0).launch(3, {})
    assert timed_out.value.status == 0 and "ReadTimeout" in str(timed_out.value)
    # a connection never made sent nothing: AWX made no job, and that is a plain error
    with pytest.raises(AWXError) as unreachable:
        client(f"http://127.0.0.1:{free_port()}", retries=0).launch(3, {})
    assert unreachable.value.status == 0 and not unreachable.value.sent
    assert not isinstance(unreachable.value, LaunchLost)


def test_the_job_a_lost_launch_started_is_found_by_its_extra_var_across_pages(
    awx: Scripted,
) -> None:
    # AWX refuses a filter on extra_vars (prevent_search), so they are read: JSON text, YAML
    # text, an object, a job of someone else's without them, a list that leaves them out
    # (the job's own page has them); pages of at most two, newest first.
    jobs = "GET /api/v2/job_templates/3/jobs/"
    awx.on(
        jobs,
        page(
            [
                {"id": 40, "extra_vars": '{"terry_launch": "other"}'},
                {"id": 39, "extra_vars": ""},
            ],
            "/api/v2/job_templates/3/jobs/?order_by=-id&page=2",
        ),
        page(
            [{"id": 38, "extra_vars": "terry_launch: also-other\n"}, {"id": 37}],
            "/api/v2/job_templates/3/jobs/?order_by=-id&page=3",
        ),
        page([{"id": 36, "extra_vars": {"terry_launch": "mine"}}]),
    )
    awx.on("GET /api/v2/jobs/37/", JSONResponse({"id": 37, "extra_vars": "{}"}))
    assert client(awx.base_url).launched_with(3, "terry_launch", "mine") == 36
    assert [h["query"].get("order_by") for h in awx.hits(jobs)] == ["-id"] * 3
    assert len(awx.hits("GET /api/v2/jobs/37/")) == 1


def test_a_lost_launch_is_looked_for_among_the_newest_jobs_only(awx: Scripted) -> None:
    jobs = "GET /api/v2/job_templates/3/jobs/"
    awx.on(jobs, page([{"id": n, "extra_vars": "{}"} for n in range(60, 0, -1)]))
    assert client(awx.base_url).launched_with(3, "terry_launch", "mine", newest=50) is None
    [asked] = awx.hits(jobs)
    assert asked["query"]["page_size"] == "50"


def test_a_list_not_newest_first_is_read_whole_so_the_newest_is_never_missed(
    awx: Scripted,
) -> None:
    # A proxy that drops the query (or a server that ignores order_by) lists the oldest
    # first: beyond ``newest`` the lost launch's job is still found, and none of them
    # carrying the mark is only said once every job was read.
    jobs = "GET /api/v2/job_templates/3/jobs/"
    oldest_first = [{"id": n, "extra_vars": "{}"} for n in range(1, 61)]
    awx.on(jobs, page([*oldest_first, {"id": 61, "extra_vars": '{"terry_launch": "mine"}'}]))
    assert client(awx.base_url).launched_with(3, "terry_launch", "mine", newest=50) == 61
    awx.on(jobs, page(oldest_first))
    assert client(awx.base_url).launched_with(3, "terry_launch", "mine", newest=50) is None


def test_a_long_list_not_newest_first_is_unknown_never_no_job(awx: Scripted) -> None:
    jobs = "GET /api/v2/job_templates/3/jobs/"
    awx.on(jobs, page([{"id": n, "extra_vars": "{}"} for n in range(1, 31)]))
    with pytest.raises(AWXError, match="does not list job template 3's jobs newest first"):
        client(awx.base_url).launched_with(3, "terry_launch", "mine", newest=10, most=20)


def test_a_template_s_own_settings_awx_applies_unprompted_are_read(awx: Scripted) -> None:
    own = {**template(), "skip_tags": "always", "start_at_task": "", "job_slice_count": 3}
    awx.on("GET /api/v2/job_templates/", page([own]), page([template()]))
    found = client(awx.base_url).template("terry-x")
    assert (found.skip_tags, found.start_at_task, found.job_slice_count) == ("always", "", 3)
    plain = client(awx.base_url).template("terry-x")  # an older AWX's list without them
    assert (plain.skip_tags, plain.start_at_task, plain.job_slice_count) == ("", "", 1)


def test_a_launch_whose_connection_was_never_made_is_tried_again() -> None:
    slept: list[float] = []
    with pytest.raises(AWXError) as caught:
        client(f"http://127.0.0.1:{free_port()}", slept, retries=2).launch(3, {})
    assert caught.value.status == 0 and "could not be reached" in str(caught.value)
    assert slept == [0.5, 1.0]


def test_a_cancel_is_asked_again_after_a_5xx_and_405_means_finished(awx: Scripted) -> None:
    awx.on(
        "POST /api/v2/jobs/4/cancel/",
        JSONResponse({"detail": "oops"}, 502),
        Response(status_code=202),
    )
    awx.on(
        "POST /api/v2/jobs/5/cancel/", JSONResponse({"detail": 'Method "POST" not allowed.'}, 405)
    )
    awx_client = client(awx.base_url)
    assert awx_client.cancel(4) is True
    assert awx_client.cancel(5) is False


# -- answers that are not what they should be -----------------------------------------------


def test_an_answer_that_is_not_json_is_retried_then_a_clear_error(awx: Scripted) -> None:
    awx.on(
        "GET /api/v2/jobs/7/",
        Response('{"id": 7, "sta', 200, media_type="application/json"),
        JSONResponse({"id": 7, "status": "running"}),
    )
    awx.on("GET /api/v2/jobs/8/", Response("<html>Sign in</html>", 200, media_type="text/html"))
    awx_client = client(awx.base_url)
    assert awx_client.job(7).status == "running"
    with pytest.raises(AWXError) as caught:
        awx_client.job(8)
    assert "not JSON (text/html" in str(caught.value)


def test_a_redirect_is_an_error_not_an_empty_answer(awx: Scripted) -> None:
    awx.on(
        "GET /api/v2/job_templates/",
        Response(status_code=302, headers={"Location": "/sso/login/?next=/api/v2/"}),
    )
    with pytest.raises(AWXError) as caught:
        client(awx.base_url).template("terry-x")
    assert caught.value.status == 302
    assert "/sso/login/" in str(caught.value) and "no job template" not in str(caught.value)


def test_an_answer_without_the_id_is_an_awx_error(awx: Scripted) -> None:
    awx.on("GET /api/v2/jobs/7/", JSONResponse({"status": "running"}))
    awx.on("GET /api/v2/jobs/8/", JSONResponse([{"id": 8}]))
    with pytest.raises(AWXError, match="has no id"):
        client(awx.base_url).job(7)
    with pytest.raises(AWXError, match="no object"):
        client(awx.base_url).job(8)


@pytest.mark.parametrize(
    ("status", "body", "said"),
    [
        (400, {"variables_needed_to_start": ["'region' value missing"]}, "variables_needed"),
        (400, {"__all__": ["Cannot start automatically, user input required!"]}, ": Cannot"),
        (400, {"extra_vars": ["Cannot parse as JSON or YAML."]}, "extra_vars: Cannot parse"),
        (401, {"detail": "Invalid token."}, "the token is wrong or expired"),
        (403, {"detail": "You do not have permission to perform this action."}, "permission"),
        (404, {"detail": "Not found."}, "Not found."),
        (409, {"error": "Resource is being used by running jobs.", "active_jobs": []}, "used"),
        (400, ["a bare list of errors"], "a bare list of errors"),
    ],
)
def test_awx_refusals_are_typed_errors_in_awx_words(
    awx: Scripted, status: int, body: Any, said: str
) -> None:
    awx.on("POST /api/v2/job_templates/3/launch/", JSONResponse(body, status))
    with pytest.raises(AWXError) as caught:
        client(awx.base_url).launch(3, {})
    assert caught.value.status == status
    assert said in str(caught.value) and f"{status} to POST" in str(caught.value)
    assert "__all__" not in str(caught.value) and TOKEN not in str(caught.value)
    assert len(awx.hits("POST /api/v2/job_templates/3/launch/")) == 1


def test_a_401_to_a_request_without_a_token_names_the_variable_that_is_not_set(
    awx: Scripted,
) -> None:
    awx.on(
        "GET /api/v2/jobs/7/",
        JSONResponse({"detail": "Authentication credentials were not provided."}, 401),
    )
    with pytest.raises(AWXError) as caught:
        AWXClient(awx.base_url, None, token_env="OPS_AWX_TOKEN", retries=0).job(7)
    assert "(no token was sent: OPS_AWX_TOKEN is not set)" in str(caught.value)
    [hit] = awx.hits("GET /api/v2/jobs/7/")
    assert hit["authorization"] == ""  # none was sent


def test_an_error_that_echoes_the_token_never_shows_it(awx: Scripted) -> None:
    awx.on(
        "GET /api/v2/jobs/7/",
        lambda r: JSONResponse({"detail": f"bad header {r.headers['authorization']}"}, 401),
    )
    with pytest.raises(AWXError) as caught:
        client(awx.base_url).job(7)
    assert TOKEN not in str(caught.value) and "[token]" in str(caught.value)


# -- launches and templates -------------------------------------------------------------------


def test_a_sliced_template_s_workflow_job_is_canceled_not_polled_as_a_job(awx: Scripted) -> None:
    # job_slice_count > 1: AWX answers with workflow_job, and id is the workflow job's.
    awx.on(
        "POST /api/v2/job_templates/3/launch/",
        JSONResponse(
            {"workflow_job": 12, "ignored_fields": {}, "id": 12, "type": "workflow_job"}, 201
        ),
    )
    awx.on("POST /api/v2/workflow_jobs/12/cancel/", Response(status_code=202))
    with pytest.raises(AWXError, match="slices its jobs: AWX started workflow job 12"):
        client(awx.base_url).launch(3, {})
    assert len(awx.hits("POST /api/v2/workflow_jobs/12/cancel/")) == 1


def test_two_templates_of_one_name_are_refused_not_guessed(awx: Scripted) -> None:
    # names are unique per organization only
    awx.on("GET /api/v2/job_templates/", page([template(3), template(9)]))
    with pytest.raises(AWXError, match="2 job templates named 'terry-x' \\(ids 3, 9"):
        client(awx.base_url).template("terry-x")


def test_the_launch_answer_is_read_as_awx_gives_it(awx: Scripted) -> None:
    awx.on(
        "POST /api/v2/job_templates/3/launch/",
        JSONResponse(
            {"job": 21, "id": 21, "type": "job", "ignored_fields": {"limit": "web-01"}}, 201
        ),
    )
    awx.on("POST /api/v2/projects/8/update/", JSONResponse({"project_update": 30, "id": 30}, 202))
    awx_client = client(awx.base_url)
    assert awx_client.launch(3, {"limit": "web-01"}) == (21, {"limit": "web-01"})
    assert awx_client.update_project(8) == 30
    [launch] = [r for r in awx.requests if r["path"].endswith("/launch/")]
    assert launch["authorization"] == f"Bearer {TOKEN}"


def test_a_url_that_is_not_http_is_refused() -> None:
    with pytest.raises(AWXError, match="http"):
        AWXClient("awx.example.org", TOKEN)


# -- events ----------------------------------------------------------------------------------


def test_events_saved_out_of_counter_order_are_each_read_once(awx: Scripted) -> None:
    # AWX's dispatcher saves events in batches from several workers: while the job runs,
    # counter 4 may be listed before 3 is saved (no gap once event_processing_finished).
    # This server lists them newest first, too (as if it ignored order_by).
    saved = [1, 2, 4]

    def events(request: Request) -> Response:
        after = int(request.query_params.get("counter__gt", "0"))
        assert request.query_params.get("order_by") == "counter"
        rows = [
            {"counter": c, "event": "runner_on_ok", "host_name": "web-01", "event_data": {}}
            for c in sorted(saved, reverse=True)
            if c > after
        ]
        return JSONResponse({"count": len(rows), "next": None, "results": rows})

    awx.on("GET /api/v2/jobs/1/job_events/", events)
    seen: list[int] = []
    stream = _Stream(client(awx.base_url), 1, lambda e: seen.append(e.seq))
    stream.read()
    saved[:] = [1, 2, 3, 4, 5]
    stream.read()
    stream.read()
    assert seen == [1, 2, 4, 3, 5]  # each once, in counter order as each read found them
    stream.note("awx_job", None, "done")
    assert seen[-1] == 6  # Terry's own line after the highest counter
    assert [r["query"]["counter__gt"] for r in awx.requests] == ["0", "2", "5"]


def test_a_vars_file_json_cannot_carry_is_refused_saying_what_to_quote(tmp_path: Any) -> None:
    # A YAML date (or keys of mixed types) has no JSON form: AWX's extra vars could not
    # carry it, so the launch is refused in words, never a TypeError.
    from terry.appliers.awx import _json, extra_vars
    from terry.appliers.base import Job, RunKind

    job = Job(7, RunKind.CHECK, "c0ffee", ("web-01",), tmp_path, vars_path="vars/7.yml")
    with pytest.raises(AWXError, match=r"vars file vars/7.yml holds a value .* quote it"):
        _json(extra_vars("cutoff: 2026-12-07\n"), job)
    assert _json(extra_vars("cutoff: '2026-12-07'\n"), job) == '{"cutoff": "2026-12-07"}'

"""Job tracking and the did-not-return verdict, on generated events with event time only."""

from __future__ import annotations

from tests import wire
from tests.helpers import make_core, value

M = ["m1", "m2", "m3"]
T0 = 1_800_000_000.0
JID = "20270115080000000001"
PROBE = "20270115080005000001"
PROBE2 = "20270115080015000001"


def feed(core, *bodies: bytes) -> None:
    core.pipeline.bodies(list(bodies))


def test_ping_counts_and_latency() -> None:
    core = make_core()
    feed(
        core,
        wire.new(JID, "test.ping", M, T0),
        *(wire.ret(JID, m, "test.ping", T0 + 0.1 * (i + 1)) for i, m in enumerate(M)),
    )
    assert value(core, 'salt_jobs_published_total{function="test.ping",tgt_type="glob"}') == 1
    assert value(core, 'salt_job_minions_targeted_total{function="test.ping"}') == 3
    assert value(core, 'salt_job_returns_total{function="test.ping",outcome="success"}') == 3
    assert value(core, 'salt_job_return_latency_seconds_count{function="test.ping"}') == 3
    assert abs(value(core, 'salt_job_return_latency_seconds_sum{function="test.ping"}') - 0.6) < 1e-3
    assert value(core, 'salt_job_return_latency_seconds_bucket{function="test.ping",le="0.25"}') == 2
    assert abs(value(core, 'salt_job_duration_seconds_sum{function="test.ping"}') - 0.3) < 1e-3
    assert value(core, "salt_jobs_in_flight") == 0
    assert value(core, "salt_job_minions_pending") == 0


def test_find_job_probes_are_not_jobs_and_running_extends() -> None:
    core = make_core(timeout=5.0, gather_job_timeout=10.0)
    feed(
        core,
        wire.new(JID, "cmd.run", M, T0),
        wire.probe(PROBE, JID, M, T0 + 5),
        *(wire.answer(PROBE, JID, m, T0 + 5.1, running=True) for m in M),
        wire.probe(PROBE2, JID, M, T0 + 15.2),
        *(wire.answer(PROBE2, JID, m, T0 + 15.3, running=True) for m in M),
        *(wire.ret(JID, m, "cmd.run", T0 + 20) for m in M),
    )
    core.pipeline.finish(60)
    assert value(core, 'salt_jobs_published_total{function="cmd.run",tgt_type="glob"}') == 1
    assert value(core, 'salt_jobs_published_total{function="saltutil.find_job",tgt_type="list"}') == 0
    assert value(core, 'salt_find_job_probes_total{function="cmd.run"}') == 2
    assert value(core, 'salt_find_job_answers_total{answer="running",function="cmd.run"}') == 6
    assert value(core, 'salt_job_returns_total{function="cmd.run",outcome="success"}') == 3
    assert value(core, 'salt_job_returns_total{function="saltutil.find_job",outcome="success"}') == 0
    assert value(core, 'salt_job_minions_no_return_total{function="cmd.run",reason="no_response"}') == 0
    assert value(core, 'salt_job_minions_no_return_total{function="cmd.run",reason="not_connected"}') == 0


def test_silent_minion_verdict_at_cli_time() -> None:
    """m3 dies: it never answers the probe; the others answer running and return."""
    core = make_core(timeout=5.0, gather_job_timeout=10.0)
    feed(
        core,
        wire.new(JID, "cmd.run", M, T0),
        wire.probe(PROBE, JID, M, T0 + 5),
        wire.answer(PROBE, JID, "m1", T0 + 5.1, running=True),
        wire.answer(PROBE, JID, "m2", T0 + 5.1, running=True),
        wire.ret(JID, "m1", "cmd.run", T0 + 12),
        wire.ret(JID, "m2", "cmd.run", T0 + 12.1),
        wire.probe(PROBE2, JID, ["m3"], T0 + 15.1),
    )
    assert value(core, "salt_job_minions_pending") == 1
    # The second round (started 15.1) has no running answer: verdict at 25.1.
    core.pipeline.finish(30)
    assert value(core, 'salt_job_minions_no_return_total{function="cmd.run",reason="not_connected"}') == 1
    assert value(core, 'salt_job_duration_seconds_count{function="cmd.run"}') == 1
    assert abs(value(core, 'salt_job_duration_seconds_sum{function="cmd.run"}') - 25.1) < 1e-3
    assert value(core, "salt_jobs_in_flight") == 0
    # A late return after the verdict is counted as late and as a return.
    feed(core, wire.ret(JID, "m3", "cmd.run", T0 + 40))
    assert value(core, 'salt_job_late_returns_total{function="cmd.run"}') == 1
    assert value(core, 'salt_job_returns_total{function="cmd.run",outcome="success"}') == 3


def test_presence_decides_reason() -> None:
    core = make_core()
    present = wire.body(
        "salt/presence/present", {"present": ["m1", "m2", "m3"], "_stamp": wire.stamp(T0 - 1)}
    )
    feed(
        core,
        present,
        wire.new(JID, "cmd.run", ["m1", "m2"], T0),
        wire.probe(PROBE, JID, ["m1", "m2"], T0 + 5),
        wire.answer(PROBE, JID, "m1", T0 + 5.1, running=False),
    )
    lost = wire.body("salt/presence/change", {"new": [], "lost": ["m2"], "_stamp": wire.stamp(T0 + 6)})
    feed(core, lost)
    core.pipeline.finish(30)
    # m1 is connected but never returned: [No response]; m2 was lost: [Not connected].
    assert value(core, 'salt_job_minions_no_return_total{function="cmd.run",reason="no_response"}') == 1
    assert value(core, 'salt_job_minions_no_return_total{function="cmd.run",reason="not_connected"}') == 1
    assert value(core, "salt_presence_minions") == 2
    assert value(core, 'salt_presence_changes_total{change="lost"}') == 1


def test_missing_minion_is_no_key_at_once() -> None:
    core = make_core()
    feed(
        core,
        wire.new(JID, "test.ping", ["m1"], T0, missing=["nosuch"], tgt=["nosuch", "m1"], tgt_type="list"),
    )
    assert value(core, 'salt_job_minions_no_return_total{function="test.ping",reason="no_key"}') == 1
    assert value(core, 'salt_job_minions_targeted_total{function="test.ping"}') == 2
    feed(core, wire.ret(JID, "m1", "test.ping", T0 + 0.2))
    assert value(core, "salt_jobs_in_flight") == 0
    assert abs(value(core, 'salt_job_duration_seconds_sum{function="test.ping"}') - 0.2) < 1e-3


def test_unprobed_job_uses_deadline() -> None:
    core = make_core(job_deadline=100.0)
    feed(core, wire.new(JID, "test.sleep", M, T0), wire.ret(JID, "m1", "test.sleep", T0 + 1))
    core.pipeline.finish(30)  # past timeout + gather_job_timeout: an --async job, nobody probes
    assert value(core, "salt_jobs_in_flight") == 1
    assert value(core, "salt_job_minions_pending") == 2
    core.tracker.advance(T0 + 100)
    assert value(core, 'salt_job_minions_no_return_total{function="test.sleep",reason="deadline"}') == 2
    assert abs(value(core, 'salt_job_duration_seconds_sum{function="test.sleep"}') - 100) < 1e-3


def test_duplicates_and_publish_twins() -> None:
    core = make_core()
    publish = wire.body(f"salt/job/{JID}/publish", {"fun": "test.ping", "jid": JID, "_stamp": wire.stamp(T0)})
    legacy = wire.body(JID, {"minions": M, "_stamp": wire.stamp(T0)})
    feed(
        core,
        legacy,
        wire.new(JID, "test.ping", M, T0),
        publish,
        wire.new(JID, "test.ping", M, T0),
        wire.ret(JID, "m1", "test.ping", T0 + 0.1),
        wire.ret(JID, "m1", "test.ping", T0 + 0.2),
    )
    assert value(core, 'salt_jobs_published_total{function="test.ping",tgt_type="glob"}') == 1
    assert value(core, 'salt_job_minions_targeted_total{function="test.ping"}') == 3
    assert value(core, 'salt_job_duplicate_returns_total{function="test.ping"}') == 1
    assert value(core, 'salt_job_returns_total{function="test.ping",outcome="success"}') == 1
    assert value(core, 'salt_events_total{category="job_publish"}') == 1
    assert value(core, 'salt_events_total{category="job_legacy"}') == 1


def test_batch_jid_merges_sub_batches() -> None:
    """3008 `salt -b 1`: one jid, several `new` events with one minion each, closed by batch complete."""
    core = make_core()
    bnew = wire.body(f"salt/batch/{JID}/new", {"fun": "test.ping", "_stamp": wire.stamp(T0)})
    done = wire.body(f"salt/batch/{JID}/complete", {"fun": "test.ping", "_stamp": wire.stamp(T0 + 3)})
    bodies = [bnew]
    for i, m in enumerate(M):
        bodies += [
            wire.new(JID, "test.ping", [m], T0 + i, tgt=[m], tgt_type="list"),
            wire.ret(JID, m, "test.ping", T0 + i + 0.1),
        ]
    feed(core, *bodies)
    assert value(core, "salt_jobs_in_flight") == 1
    feed(core, done)
    assert value(core, 'salt_jobs_published_total{function="test.ping",tgt_type="list"}') == 1
    assert value(core, 'salt_job_minions_targeted_total{function="test.ping"}') == 3
    assert value(core, 'salt_job_duration_seconds_count{function="test.ping"}') == 1
    assert value(core, "salt_jobs_in_flight") == 0


def test_unpublished_kinds() -> None:
    core = make_core()
    feed(
        core,
        wire.ret("20270115080000000002", "m1", "test.ping", T0, schedule="sched1"),
        wire.ret("req", "m1", "test.ping", T0, success=None),
        wire.ret("20270115080000000003", "m1", "test.ping", T0 + 1, success=None, user=None),
        wire.ret("20270115080000000004", "m2", "cmd.run", T0 + 1, retcode=1),
    )
    assert value(core, 'salt_job_returns_unpublished_total{function="test.ping",kind="scheduled"}') == 1
    # "user" is present but None in the third: still a published-style return without publish.
    assert value(core, 'salt_job_returns_unpublished_total{function="test.ping",kind="salt_call"}') == 1
    assert value(core, 'salt_job_returns_unpublished_total{function="cmd.run",kind="unknown_jid"}') == 1
    assert value(core, 'salt_job_returns_total{function="cmd.run",outcome="failure"}') == 1
    assert value(core, 'salt_job_return_failures_total{function="cmd.run",reason="retcode"}') == 1
    assert value(core, "salt_job_return_latency_seconds_count") == 0


def test_failure_reasons_and_state_results() -> None:
    core = make_core()
    states = {
        "file_|-a_|-/tmp/a_|-managed": {
            "result": True,
            "changes": {"diff": "x"},
            "duration": 10.0,
            "__id__": "a",
        },
        "cmd_|-b_|-exit 3_|-run": {"result": False, "changes": {}, "duration": 1500.0, "__id__": "b"},
        "test_|-c_|-c_|-nop": {"result": None, "changes": {}, "duration": 0.5, "__id__": "c"},
    }
    feed(
        core,
        wire.new(JID, "state.apply", ["m1", "m2"], T0),
        # Salt can report success True with a failed state (scheduled highstates): the state wins.
        wire.ret(JID, "m1", "state.apply", T0 + 2, retcode=2, success=True, ret_value=states),
        wire.ret(JID, "m2", "state.apply", T0 + 2, retcode=0, success=False, ret_value="Rendering failed"),
    )
    assert value(core, 'salt_job_return_failures_total{function="state.apply",reason="state"}') == 1
    assert value(core, 'salt_job_return_failures_total{function="state.apply",reason="success"}') == 1
    assert value(core, 'salt_state_results_total{function="state.apply",result="succeeded"}') == 1
    assert value(core, 'salt_state_results_total{function="state.apply",result="failed"}') == 1
    assert value(core, 'salt_state_results_total{function="state.apply",result="skipped"}') == 1
    assert value(core, 'salt_state_changes_total{function="state.apply"}') == 1
    assert abs(value(core, 'salt_state_run_duration_seconds_sum{function="state.apply"}') - 1.5105) < 1e-6


def test_open_jobs_are_bounded_and_evictions_counted() -> None:
    core = make_core(max_jobs=5, max_closed_jobs=3)
    feed(core, *(wire.new(f"2027011508000000{i:04d}", "test.ping", ["m1"], T0 + i) for i in range(20)))
    assert value(core, "salt_jobs_in_flight") == 5
    assert value(core, 'salt_exporter_evictions_total{kind="job"}') == 15
    feed(core, *(wire.ret(f"2027011508000000{i:04d}", "m1", "test.ping", T0 + 30) for i in range(15, 20)))
    assert value(core, 'salt_exporter_evictions_total{kind="closed_job"}') == 2
    assert value(core, 'salt_exporter_jobs_tracked{state="closed"}') == 3


def test_flood_keeps_deadline_queue_bounded() -> None:
    core = make_core(max_jobs=100)
    feed(
        core,
        *(wire.new(f"2027011508{i:010d}", "test.ping", ["m1", "m2"], T0 + i * 0.001) for i in range(5000)),
    )
    assert value(core, "salt_jobs_in_flight") == 100
    assert value(core, 'salt_exporter_evictions_total{kind="job"}') == 4900
    assert len(core.tracker._heap) <= 2 * 100 + 1024 + 1
    assert value(core, "salt_job_minions_pending") == 200


def test_function_label_is_capped() -> None:
    core = make_core(metrics_max_functions=3)
    feed(core, *(wire.ret("req", f"m{i}", f"evil.fun{i}", T0) for i in range(10)))
    text = core.exposition().decode()
    import re

    assert len(set(re.findall(r'function="(evil\.fun\d+)"', text))) == 3
    assert value(core, 'salt_job_returns_total{function="__other__",outcome="success"}') == 7
    # Each sample that had its value replaced counts: a return and its unpublished count, 7 times.
    assert value(core, 'salt_exporter_label_overflow_total{label="function"}') == 14


def test_runner_wheel_auth_key_start_beacon() -> None:
    core = make_core()
    rj = "20270115080000000009"
    feed(
        core,
        wire.body(f"salt/run/{rj}/new", {"fun": "runner.jobs.active", "jid": rj, "_stamp": wire.stamp(T0)}),
        wire.body(
            f"salt/run/{rj}/ret",
            {
                "fun": "runner.jobs.active",
                "jid": rj,
                "success": True,
                "return": {},
                "_stamp": wire.stamp(T0 + 0.4),
            },
        ),
        wire.body(f"salt/wheel/{rj}/new", {"fun": "wheel.key.list_all", "_stamp": wire.stamp(T0)}),
        wire.body(
            f"salt/wheel/{rj}/ret", {"fun": "wheel.key.list_all", "success": False, "_stamp": wire.stamp(T0)}
        ),
        wire.body("salt/auth", {"act": "accept", "id": "m1", "result": True, "_stamp": wire.stamp(T0)}),
        wire.body("salt/key", {"act": "delete", "id": "m1", "result": True, "_stamp": wire.stamp(T0)}),
        wire.body("salt/minion/m1/start", {"id": "m1", "_stamp": wire.stamp(T0)}),
        wire.body("minion_start", {"id": "m1", "_stamp": wire.stamp(T0)}),
        wire.body("salt/beacon/m1/inotify//etc/x", {"id": "m1", "_stamp": wire.stamp(T0)}),
    )
    assert value(core, 'salt_runner_jobs_total{function="runner.jobs.active"}') == 1
    assert value(core, 'salt_runner_returns_total{function="runner.jobs.active",outcome="success"}') == 1
    assert abs(value(core, 'salt_runner_duration_seconds_sum{function="runner.jobs.active"}') - 0.4) < 1e-3
    assert value(core, 'salt_wheel_returns_total{function="wheel.key.list_all",outcome="failure"}') == 1
    assert value(core, 'salt_auth_total{act="accept"}') == 1
    assert value(core, 'salt_key_events_total{act="delete"}') == 1
    assert value(core, "salt_minion_starts_total") == 1
    assert value(core, 'salt_beacon_events_total{beacon="inotify"}') == 1


def test_syndic_copies_not_counted_twice() -> None:
    core = make_core()
    r = wire.ret(JID, "m1", "test.ping", T0)
    syndic_copy = b"syndic/syn1/" + r
    feed(core, wire.new(JID, "test.ping", ["m1"], T0), r, syndic_copy)
    assert value(core, 'salt_job_returns_total{function="test.ping",outcome="success"}') == 1
    assert value(core, 'salt_events_total{category="syndic"}') == 1


def test_per_minion_series_opt_in_capped_and_expired() -> None:
    now = [T0]
    core = make_core(clock=None, metrics_minion_label=True, metrics_max_minions=2, metrics_minion_ttl=60.0)
    core.sink.clock = lambda: now[0]
    feed(core, *(wire.ret("req", f"m{i}", "test.ping", T0) for i in range(3)))
    assert value(core, 'salt_minion_returns_total{minion="m2",outcome="success"}') == 1
    assert value(core, 'salt_minion_returns_total{minion="m0",outcome="success"}') == 0
    assert value(core, 'salt_exporter_evictions_total{kind="minion_series"}') == 1
    now[0] += 120
    assert value(core, 'salt_minion_returns_total{minion="m2",outcome="success"}') == 0
    assert value(core, 'salt_exporter_evictions_total{kind="minion_expired"}') == 2
    off = make_core()
    feed(off, wire.ret("req", "m1", "test.ping", T0))
    assert "minion=" not in off.exposition().decode()


def test_cluster_peer_events_are_left_to_the_peer_s_exporter() -> None:
    """Salt 3007+ master clusters forward events between peers with `__peer_id`: each master's exporter counts
    its own, so the forwarded copies are only categorised (sum() over masters must not double count)."""
    core = make_core()
    forwarded = [
        wire.new(JID, "test.ping", ["m1"], T0, __peer_id="master-b"),
        wire.ret(JID, "m1", "test.ping", T0 + 0.1, __peer_id="master-b"),
        wire.body("cluster/peer/master-b", {"peer_id": "master-b", "_stamp": wire.stamp(T0)}),
    ]
    feed(core, *forwarded)
    assert value(core, 'salt_events_total{category="cluster_peer"}') == 2
    assert value(core, 'salt_events_total{category="cluster"}') == 1
    assert value(core, 'salt_job_returns_total{function="test.ping",outcome="success"}') == 0
    assert value(core, 'salt_jobs_published_total{function="test.ping",tgt_type="glob"}') == 0


def test_cluster_jobs_belong_to_the_publishing_master_s_exporter() -> None:
    """Shaped like a real 3007.16 cluster recording (tests/e2e/test_topologies.py): master A publishes to its
    minion a1 and to b1, a minion of peer B; b1's return reaches A only as B's forwarded copy. A job B
    published shows up here with `__peer_id`: a1's return to it is left to B's exporter, which sees it
    forwarded, and so is a1's answer to B's find_job probe."""
    core = make_core()
    mine, theirs, probe = JID, "20270115080000000002", "20270115080000000003"
    feed(
        core,
        wire.new(mine, "test.ping", ["a1", "b1"], T0),
        wire.ret(mine, "a1", "test.ping", T0 + 0.1),
        wire.ret(mine, "b1", "test.ping", T0 + 0.2, __peer_id="B"),
        wire.new(theirs, "cmd.run", ["a1", "b1"], T0 + 1, __peer_id="B"),
        wire.ret(theirs, "b1", "cmd.run", T0 + 1.1, __peer_id="B"),
        wire.new(probe, "saltutil.find_job", ["a1"], T0 + 6, __peer_id="B", arg=[theirs]),
        wire.ret(probe, "a1", "saltutil.find_job", T0 + 6.1, ret_value={"jid": theirs}),
        wire.ret(theirs, "a1", "cmd.run", T0 + 7),
        wire.ret(mine, "b1", "test.ping", T0 + 8, __peer_id="B"),  # a duplicate is still a duplicate
    )
    assert value(core, 'salt_job_returns_total{function="test.ping",outcome="success"}') == 2
    assert value(core, 'salt_job_duplicate_returns_total{function="test.ping"}') == 1
    assert value(core, 'salt_job_returns_total{function="cmd.run",outcome="success"}') == 0
    assert value(core, 'salt_find_job_answers_total{answer="running",function="unknown"}') == 0
    assert value(core, 'salt_jobs_published_total{function="cmd.run",tgt_type="glob"}') == 0
    assert value(core, "salt_jobs_in_flight") == 0
    assert "salt_job_returns_unpublished_total{" not in core.exposition().decode()
    # Returns of jobs nobody here saw published stay unpublished ones, whoever forwarded them.
    feed(core, wire.ret("req", "a1", "test.ping", T0 + 9))
    assert value(core, 'salt_job_returns_unpublished_total{function="test.ping",kind="salt_call"}') == 1


def test_cluster_peer_jobs_are_bounded() -> None:
    core = make_core()
    core.tracker.peer_jobs.cap = 2
    feed(
        core, *(wire.new(f"2027011508000000001{i}", "test.ping", ["b1"], T0, __peer_id="B") for i in range(3))
    )
    assert value(core, 'salt_exporter_evictions_total{kind="peer_job"}') == 1
    assert len(core.tracker.peer_jobs) == 2


def test_master_stats_summed_over_workers() -> None:
    core = make_core()
    for worker, runs in (("MWorker-1", 10), ("MWorker-2", 5)):
        feed(
            core,
            wire.body(
                f"salt/stats/{worker}",
                {
                    "worker": worker,
                    "time": T0,
                    "_stamp": wire.stamp(T0),
                    "stats": {"_return": {"runs": runs, "mean": runs / 1000}},
                },
            ),
        )
    assert value(core, 'salt_master_command_runs{command="_return"}') == 15
    assert value(core, 'salt_master_command_mean_seconds{command="_return"}') == 0.01


def test_a_known_syndic_is_a_relay_not_a_minion() -> None:
    """Once `syn1` is known (any syndic/syn1/ event), a publish listing it waits for its announcement; a
    syndic that never announces (down) gets no verdict, as the CLI skips syndics too."""
    core = make_core(timeout=5.0, gather_job_timeout=10.0, syndic_wait=5.0)
    jid2 = "20270115080100000001"
    feed(
        core,
        wire.body("syndic/syn1/start", {"_stamp": wire.stamp(T0 - 60)}),
        wire.new(JID, "test.ping", ["m1", "syn1"], T0),
        wire.ret(JID, "m1", "test.ping", T0 + 0.1),
    )
    assert value(core, "salt_jobs_in_flight") == 1  # still waiting for syn1's minions
    feed(
        core,
        wire.body(f"syndic/syn1/{JID}", {"minions": ["s1", "s2"], "_stamp": wire.stamp(T0 + 0.3)}),
        wire.ret(JID, "s1", "test.ping", T0 + 0.4),
        wire.ret(JID, "s2", "test.ping", T0 + 0.5),
    )
    assert value(core, "salt_jobs_in_flight") == 0
    assert value(core, 'salt_job_minions_targeted_total{function="test.ping"}') == 3
    assert abs(value(core, 'salt_job_duration_seconds_sum{function="test.ping"}') - 0.5) < 1e-3
    # syn1 is down: nothing announced, the CLI probes and gives up after timeout + 2 rounds of 15 s
    feed(
        core,
        wire.new(jid2, "cmd.run", ["m1", "syn1"], T0 + 100),
        wire.ret(jid2, "m1", "cmd.run", T0 + 100.2),
        wire.probe(PROBE, jid2, ["syn1"], T0 + 105),
    )
    core.pipeline.finish(60)
    assert value(core, "salt_jobs_in_flight") == 0
    assert value(core, 'salt_job_minions_no_return_total{function="cmd.run",reason="no_response"}') == 0
    assert value(core, 'salt_job_minions_no_return_total{function="cmd.run",reason="not_connected"}') == 0
    assert value(core, 'salt_job_minions_targeted_total{function="cmd.run"}') == 1
    assert abs(value(core, 'salt_job_duration_seconds_sum{function="cmd.run"}') - 20.0) < 1.5
    assert value(core, 'salt_syndic_events_total{syndic="syn1"}') == 2


def test_syndic_presence_copy_split_across_reads_in_live_mode() -> None:
    """A master of masters fires the syndic master's presence under the plain tag, then its syndic/<id>/ copy
    (tests/fixtures/syndic). Live, the pair can straddle two reads with a clock tick between them: this
    master's presence view must still be its own; a lone presence event takes effect within a second."""
    now = [T0]
    core = make_core(clock=lambda: now[0])
    own = wire.body("salt/presence/present", {"present": ["m1", "syn1"], "_stamp": wire.stamp(T0)})
    feed(core, own)
    now[0] = T0 + 1.5
    core.pipeline.tick()
    assert value(core, "salt_presence_minions") == 2
    foreign = {"present": ["s1", "s2", "s3"], "_stamp": wire.stamp(T0 + 2)}
    feed(core, wire.body("salt/presence/present", foreign))
    now[0] = T0 + 2.01
    core.pipeline.tick()
    feed(core, wire.body("syndic/syn1/salt/presence/present", {**foreign, "_stamp": wire.stamp(T0 + 2.001)}))
    now[0] = T0 + 5
    core.pipeline.tick()
    assert value(core, "salt_presence_minions") == 2
    changed = {"new": ["s4"], "lost": [], "_stamp": wire.stamp(T0 + 6)}
    feed(core, wire.body("salt/presence/change", changed))
    feed(core, wire.body("syndic/syn1/salt/presence/change", changed))
    assert value(core, 'salt_presence_changes_total{change="new"}') == 0


def _held_job(core, presence_gap: float = 10.0) -> None:
    """m1 and m2 return; m3 is in the last presence view but answers no probe (it died after that event)."""
    for at in (T0 - 1 - presence_gap, T0 - 1):
        feed(core, wire.body("salt/presence/present", {"present": M, "_stamp": wire.stamp(at)}))
    feed(
        core,
        wire.new(JID, "cmd.run", M, T0),
        wire.ret(JID, "m1", "cmd.run", T0 + 1),
        wire.ret(JID, "m2", "cmd.run", T0 + 1),
        wire.probe(PROBE, JID, ["m3"], T0 + 5),
    )
    core.pipeline.bodies([])  # nothing more until the verdict (round end T0 + 15, plus grace)
    core.tracker.advance(T0 + 17)


NOT_CONNECTED = 'salt_job_minions_no_return_total{function="cmd.run",reason="not_connected"}'
NO_RESPONSE = 'salt_job_minions_no_return_total{function="cmd.run",reason="no_response"}'


def test_silent_minion_waits_for_the_next_presence_event_then_not_connected() -> None:
    """The CLI asks the publish port at verdict time and says [Not connected] for a minion that died after
    the last presence event; the bus tells only at the next one, so the verdict waits for it."""
    core = make_core()
    _held_job(core)
    assert value(core, NOT_CONNECTED) == 0 and value(core, NO_RESPONSE) == 0
    assert value(core, "salt_jobs_in_flight") == 1
    lost = wire.body("salt/presence/change", {"new": [], "lost": ["m3"], "_stamp": wire.stamp(T0 + 18.5)})
    feed(core, lost)
    core.tracker.advance(T0 + 20)  # the presence event itself waits up to a second for a syndic copy
    assert value(core, NOT_CONNECTED) == 1 and value(core, NO_RESPONSE) == 0
    assert value(core, "salt_jobs_in_flight") == 0
    # The job's duration ends at the CLI's verdict, not at the presence event.
    assert value(core, 'salt_job_duration_seconds_sum{function="cmd.run"}') == 15.0


def test_silent_minion_still_present_at_the_next_presence_event_is_no_response() -> None:
    core = make_core()
    _held_job(core)
    feed(core, wire.body("salt/presence/present", {"present": M, "_stamp": wire.stamp(T0 + 19)}))
    core.tracker.advance(T0 + 21)
    assert value(core, NO_RESPONSE) == 1 and value(core, NOT_CONNECTED) == 0


def test_held_verdict_is_bounded_by_the_presence_interval_learnt_from_the_stream() -> None:
    core = make_core()
    _held_job(core, presence_gap=10.0)
    core.tracker.advance(T0 + 15 + 10 + 2)  # not yet: verdict (T0 + 15) + interval + slack
    assert value(core, NO_RESPONSE) == 0
    core.tracker.advance(T0 + 15 + 10 + 4)
    assert value(core, NO_RESPONSE) == 1 and value(core, "salt_jobs_in_flight") == 0


def test_a_return_while_the_verdict_is_held_is_late() -> None:
    core = make_core()
    _held_job(core)
    feed(core, wire.ret(JID, "m3", "cmd.run", T0 + 18))
    assert value(core, 'salt_job_late_returns_total{function="cmd.run"}') == 1
    feed(core, wire.body("salt/presence/present", {"present": M, "_stamp": wire.stamp(T0 + 19)}))
    core.tracker.advance(T0 + 21)
    assert value(core, NO_RESPONSE) == 1


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _gap_core(clock: Clock):
    core = make_core(clock=clock)
    core.pipeline.chunk(1, False, wire.wrap(wire.new(JID, "test.ping", M, T0)))
    core.pipeline.chunk(1, False, wire.wrap(wire.ret(JID, "m1", "test.ping", T0 + 0.1)))
    return core


def _gap_verdict(core, clock: Clock) -> None:
    """The CLI probes m2 and m3 after the gap and gives up on them: their returns may have been lost."""
    clock.now = T0 + 5
    core.pipeline.chunk(
        core.pipeline.generation, False, wire.wrap(wire.probe(PROBE, JID, ["m2", "m3"], T0 + 5))
    )
    clock.now = T0 + 30
    core.pipeline.tick()


def test_reconnect_mid_job_gives_bus_gap_not_silent() -> None:
    clock = Clock(T0 + 0.2)
    core = _gap_core(clock)
    core.health.disconnected_at = T0 + 0.5  # the reader lost the connection here ...
    clock.now = T0 + 2.5
    core.pipeline.chunk(
        2, False, wire.wrap(wire.body("salt/minion/m9/start", {"_stamp": wire.stamp(T0 + 2.5)}))
    )
    _gap_verdict(core, clock)  # ... and m2, m3 returned while it was down
    assert value(core, 'salt_job_minions_no_return_total{function="test.ping",reason="bus_gap"}') == 2
    for reason in ("no_response", "not_connected"):
        assert value(core, f'salt_job_minions_no_return_total{{function="test.ping",reason="{reason}"}}') == 0
    assert value(core, 'salt_exporter_bus_gaps_total{cause="disconnect"}') == 1
    assert value(core, 'salt_exporter_bus_gap_seconds_total{cause="disconnect"}') == 2.0


def test_dropped_bytes_mid_job_give_bus_gap() -> None:
    clock = Clock(T0 + 0.2)
    core = _gap_core(clock)
    core.health.first_drop_at = T0 + 1.0
    clock.now = T0 + 1.5
    core.pipeline.chunk(
        1, True, wire.wrap(wire.body("salt/minion/m9/start", {"_stamp": wire.stamp(T0 + 1.5)}))
    )
    _gap_verdict(core, clock)
    assert value(core, 'salt_job_minions_no_return_total{function="test.ping",reason="bus_gap"}') == 2
    assert value(core, 'salt_exporter_bus_gaps_total{cause="buffer_full"}') == 1
    assert value(core, 'salt_exporter_bus_gap_seconds_total{cause="buffer_full"}') == 0.5


def test_without_a_gap_the_same_job_is_silent() -> None:
    clock = Clock(T0 + 0.2)
    core = _gap_core(clock)
    _gap_verdict(core, clock)
    assert value(core, 'salt_job_minions_no_return_total{function="test.ping",reason="bus_gap"}') == 0
    assert value(core, 'salt_job_minions_no_return_total{function="test.ping",reason="not_connected"}') == 2


def _start(jid: str, minion: str, t: float) -> bytes:
    """What a 3008 minion fires for a job published with `salt --start-event` (_fire_start_event)."""
    data = {"id": minion, "jid": jid, "fun": "cmd.run", "tgt": "*", "tgt_type": "glob", "user": "root"}
    return wire.body(f"salt/job/{jid}/start/{minion}", {**data, "_stamp": wire.stamp(t)})


def test_start_events_split_dispatch_from_run_and_tell_accepted_from_never_started() -> None:
    core = make_core()
    feed(
        core,
        wire.new(JID, "cmd.run", M, T0, start_event=True),
        _start(JID, "m1", T0 + 0.5),
        _start(JID, "m2", T0 + 2.0),
        _start(JID, "m1", T0 + 0.6),  # a repeat does not count twice
        wire.ret(JID, "m1", "cmd.run", T0 + 3.5),
        wire.probe(PROBE, JID, ["m2", "m3"], T0 + 5),
    )
    core.pipeline.finish(30)
    assert value(core, 'salt_job_dispatch_seconds_count{function="cmd.run"}') == 2
    assert value(core, 'salt_job_dispatch_seconds_sum{function="cmd.run"}') == 2.5  # 0.5 + 2.0
    assert value(core, 'salt_job_run_seconds_count{function="cmd.run"}') == 1
    assert value(core, 'salt_job_run_seconds_sum{function="cmd.run"}') == 3.0  # m1: 0.5 -> 3.5
    # m2 accepted the job and went silent; m3 never started it. Both did not return.
    assert value(core, 'salt_job_minions_no_return_total{function="cmd.run",reason="not_connected"}') == 2
    assert (
        value(core, 'salt_job_minions_no_return_started_total{function="cmd.run",reason="not_connected"}')
        == 1
    )
    assert value(core, 'salt_events_total{category="job_start"}') == 3


def test_without_start_events_nothing_changes() -> None:
    core = make_core()
    feed(core, wire.new(JID, "cmd.run", M, T0), *(wire.ret(JID, m, "cmd.run", T0 + 1) for m in M))
    assert value(core, 'salt_job_dispatch_seconds_count{function="cmd.run"}') == 0
    assert value(core, 'salt_job_run_seconds_count{function="cmd.run"}') == 0


def test_a_verdict_while_still_disconnected_is_a_bus_gap() -> None:
    """On a quiet bus no chunk follows the drop: the jobs are marked when a tick sees the reader lost the
    connection, so a deadline passing while disconnected gives bus_gap, not deadline."""
    clock = Clock(T0 + 0.2)
    core = make_core(clock=clock, job_deadline=10.0)
    core.pipeline.chunk(1, False, wire.wrap(wire.new(JID, "test.ping", M, T0)))
    core.health.connected, core.health.connections = True, 1
    core.health.connected, core.health.disconnected_at = False, T0 + 1  # the reader lost it
    clock.now = T0 + 20  # past the deadline (and the first find_job round the CLI never started)
    core.pipeline.tick()
    assert value(core, 'salt_job_minions_no_return_total{function="test.ping",reason="bus_gap"}') == 3
    assert value(core, 'salt_job_minions_no_return_total{function="test.ping",reason="deadline"}') == 0
    core.health.connected, core.health.connections = True, 2  # back
    clock.now = T0 + 21
    core.pipeline.tick()
    assert value(core, 'salt_exporter_bus_gaps_total{cause="disconnect"}') == 1
    assert value(core, 'salt_exporter_bus_gap_seconds_total{cause="disconnect"}') == 20.0

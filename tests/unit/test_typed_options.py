"""The entry points that build a subscription, a live query or a replication say which
options they take in their signatures (an editor completes them), in step with what the
callee accepts, and an option they do not take is still a TypeError naming it."""

from __future__ import annotations

import inspect
import sys
import typing

import pytest

import cloudsync
from cloudsync.live_query import RESERVED

DOCUMENT_FILTERS = {"include_docs", "selector", "doc_ids", "filter", "query_params"}
URL = "http://couch.test"  # never reached: every check below comes before a request


def keyword_parameters(callable_: object, skip: int = 0) -> dict[str, inspect.Parameter]:
    """The parameters after the first `skip`, by name."""
    return dict(list(inspect.signature(callable_).parameters.items())[skip:])  # type: ignore[arg-type]


def typed_options() -> dict[str, str]:
    """SubscriptionOptions' keys and their annotations, as written."""
    return {name: hint.__forward_arg__ if isinstance(hint, typing.ForwardRef) else hint
            for name, hint in cloudsync.SubscriptionOptions.__annotations__.items()}


def test_subscription_options_are_the_subscriptions_own():
    """SubscriptionOptions are keyword options of Subscription(), with the same
    annotations: everything but the position, the document filters, the acknowledgement
    and `reconnect`, which the entry points set or spell out themselves."""
    constructor = keyword_parameters(cloudsync.Subscription.__init__, skip=3)  # self, database, transport
    set_by_callers = {"since", "checkpoint", "checkpoint_every", "manual_ack", "reconnect", *DOCUMENT_FILTERS}
    assert set(typed_options()) == set(constructor) - set_by_callers
    assert typed_options() == {name: constructor[name].annotation for name in typed_options()}
    assert cloudsync.SubscriptionOptions.__required_keys__ == frozenset()


def test_subscribe_db_updates_takes_every_subscription_option_but_the_document_filters():
    """Client.subscribe_db_updates() spells out the subscription options that are not
    SubscriptionOptions (same kinds, defaults and annotations as Subscription()'s) and
    types its `**options` as SubscriptionOptions: together, all of them but the document
    filters."""
    method = keyword_parameters(cloudsync.Client.subscribe_db_updates, skip=1)
    constructor = keyword_parameters(cloudsync.Subscription.__init__, skip=2)
    options = method.pop("options")
    assert options.kind is inspect.Parameter.VAR_KEYWORD
    assert options.annotation == "Unpack[SubscriptionOptions]"
    assert all(parameter == constructor[name] for name, parameter in method.items())
    assert set(method) | set(typed_options()) == set(constructor) - DOCUMENT_FILTERS


def test_live_query_signature_is_the_live_querys():
    """Database.live_query() spells out every option of LiveQuery(), with the same names,
    kinds, defaults and annotations, its `**subscription_options` typed alike. (Only
    `transport` is `Any` in LiveQuery(): a live query may not import the transports, see
    tests/test_architecture.py.)"""
    method = list(keyword_parameters(cloudsync.Database.live_query, skip=1).values())
    constructor = list(keyword_parameters(cloudsync.LiveQuery.__init__, skip=2).values())
    assert [p.replace(annotation="Any") if p.name == "transport" else p for p in method] == constructor
    assert constructor[-1].annotation == "Unpack[SubscriptionOptions]"


def test_live_query_options_leave_out_what_it_sets_itself():
    """A live query's typed options are SubscriptionOptions, which include nothing it
    passes to its subscription itself (`since`, `include_docs`, `selector`, `reconnect`...)
    and nothing that is one of its own options."""
    own = keyword_parameters(cloudsync.LiveQuery.__init__, skip=1)
    assert not set(typed_options()) & (RESERVED | set(own))


def test_replicate_signature_is_the_replications():
    """replicate() spells out every option of Replication(), with the same names, kinds,
    defaults and annotations; its `subscription_options` are typed SubscriptionOptions."""
    function = keyword_parameters(cloudsync.replicate)
    constructor = keyword_parameters(cloudsync.Replication.__init__, skip=1)
    assert function == constructor
    assert function["subscription_options"].annotation == "SubscriptionOptions | None"


@pytest.mark.parametrize("option", ["heartbaet", "reconnect_policy"])
def test_subscribe_db_updates_names_an_unknown_option(option: str):
    """subscribe_db_updates() with an option it does not take raises TypeError naming it."""
    with pytest.raises(TypeError, match=option):
        cloudsync.Client(URL).subscribe_db_updates(**{option: 1})


@pytest.mark.parametrize("option", ["heartbaet", "query_params", "checkpoint_every"])
def test_live_query_names_an_unknown_option(option: str):
    """live_query() with an option that is neither its own nor a SubscriptionOptions key
    (a misspelling, or a subscription option a live query has no use for) raises
    TypeError naming it."""
    with pytest.raises(TypeError, match=option):
        cloudsync.Client(URL).database("db").live_query({}, **{option: 1})


def test_replicate_names_an_unknown_option():
    """replicate() with an option Replication() does not take raises TypeError naming it."""
    db = cloudsync.Client(URL).database("db")
    with pytest.raises(TypeError, match="batchsize"):
        cloudsync.replicate(db, db, batchsize=10)


@pytest.mark.parametrize("option", ["heartbaet", "include_docs", "manual_ack"])
def test_replication_names_an_unknown_subscription_option(option: str):
    """Replication(subscription_options=...) with a key that is not a SubscriptionOptions
    key (a misspelling, or an option the replication sets or must not have changed)
    raises TypeError naming it, before anything runs."""
    db = cloudsync.Client(URL).database("db")
    with pytest.raises(TypeError, match=option):
        cloudsync.Replication(db, db, subscription_options={option: 1})


def test_importing_needs_no_typing_extensions(tmp_path):
    """cloudsync imports, and the typed signatures read, where typing_extensions is not
    installed: `Unpack` is named in annotations only, which are never evaluated."""
    import subprocess

    code = (
        "import sys\n"
        "class Hide:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.partition('.')[0] == 'typing_extensions':\n"
        "            raise ImportError(name)\n"
        "sys.meta_path.insert(0, Hide())\n"
        "import inspect, cloudsync\n"
        "inspect.signature(cloudsync.Database.live_query)\n"
        "assert 'typing_extensions' not in sys.modules\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                            cwd=tmp_path, env={"PYTHONPATH": ":".join(sys.path)})
    assert result.returncode == 0, result.stderr

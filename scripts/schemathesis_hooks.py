"""Schemathesis hooks for scripts/test: requests that can get past who and where.

POST /v1/tickets refuses a body whose players do not include the caller (403) or whose queue the
service does not serve (400) before it reads anything else, and the document cannot say who the
caller is nor which queues there are. Generated bodies would all stop there, so the first player
becomes the caller and the queue one the dev server serves: the rest of the body (attributes,
latencies, more players and their party tokens) is as generated, and meets the real validation.

The dev server's fleet serves one region, `local`, and refuses latencies that leave it out (no
match of theirs could be placed): where a player's drawn latencies are valid, `local` is added to
them, so that such bodies too reach the checks after.

A value is replaced only where the generated one is valid already, so that a body generated to
break the schema (a negative case) still breaks it and must still be refused.

Set by scripts/test: QM_CALLER, the player the token was minted for; QM_REPO, the checkout, whose
examples/rulesets the dev server serves (a queue is named after its rule set) and whose
infra/openapi.yaml says what a player id is.
"""

import json
import os
import pathlib
import re

import schemathesis
import yaml

CALLER = os.environ["QM_CALLER"]
REPO = pathlib.Path(os.environ["QM_REPO"])
QUEUES = sorted(
    json.loads(path.read_text(encoding="utf-8-sig"))["name"]
    for path in (REPO / "examples" / "rulesets").glob("*.json")
)
DOCUMENT = yaml.safe_load((REPO / "infra" / "openapi.yaml").read_text(encoding="utf-8"))
PLAYER_ID = re.compile(DOCUMENT["components"]["schemas"]["RequestedPlayer"]["properties"]["id"]["pattern"])


@schemathesis.hook
def map_body(ctx, body):
    operation = ctx.operation
    if operation is None or (operation.method.upper(), operation.path) != ("POST", "/v1/tickets"):
        return body
    if not isinstance(body, dict):
        return body
    players = body.get("players")
    if isinstance(players, list) and players and isinstance(players[0], dict):
        first = players[0]
        if isinstance(first.get("id"), str) and PLAYER_ID.match(first["id"]):
            first["id"] = CALLER
    for player in players if isinstance(players, list) else []:
        latencies = player.get("latencies") if isinstance(player, dict) else None
        if isinstance(latencies, dict) and latencies and "local" not in latencies:
            measured = list(latencies.values())
            if all(isinstance(ms, int) and not isinstance(ms, bool) and 0 <= ms <= 10_000 for ms in measured):
                latencies["local"] = measured[0]
    queue = body.get("queue")
    if isinstance(queue, str) and QUEUES:
        # Any string is a valid queue to the document; which served queue follows from the drawn one.
        body["queue"] = QUEUES[len(queue) % len(QUEUES)]
    return body

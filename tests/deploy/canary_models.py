"""Support bots the canary tests register and serve (importable, so their pickles load).

Each bot answers a request `{"n": int}` with one sentence: copied from the
support context (grounded) for a share of the requests, invented otherwise.
The gateway's online `groundedness` evaluator scores a copied sentence 1.0
and the invented one 0.0, so a bot's live groundedness is its grounded share.
"""

from __future__ import annotations

from typing import Any

import lockgate as lg

CONTEXT = (
    "Refunds are accepted within 30 days of purchase. Shipping is free for orders over 50 dollars."
)
REFUNDS = "Refunds are accepted within 30 days of purchase."
SHIPPING = "Shipping is free for orders over 50 dollars."
INVENTED = "Our office cats enjoy jazz records on rainy Tuesdays."


class Bot:
    """Grounded on `grounded` requests out of every 10 (by request number), with `sentence`."""

    def __init__(self, grounded: int, sentence: str = REFUNDS) -> None:
        self.grounded = grounded
        self.sentence = sentence

    def predict(self, inputs: Any) -> str:
        n = int(inputs["n"]) if isinstance(inputs, dict) else 0
        return self.sentence if n % 10 < self.grounded else INVENTED


BOTS = {
    "mixed": Bot(8),  # groundedness 0.8: the incumbent
    "better": Bot(10),  # 1.0
    "worse": Bot(2),  # 0.2
    "shipping": Bot(10, SHIPPING),  # 1.0, with answers the incumbent never gives
}


@lg.task
def build(kind: str) -> Bot:
    return BOTS[kind]


@lg.task
def check(bot: Bot) -> dict:
    return {"accuracy": 0.95}


def registered(kind: Any) -> Any:
    """Build the bot, gate it, register it as a version of model `support-bot`."""
    bot = build(kind)
    return lg.register(bot, name="support-bot", scores=lg.gate(check(bot), {"accuracy": ">= 0.9"}))


@lg.pipeline
def ship(kind: str = "mixed"):
    return lg.promote(registered(kind), name="support-bot", alias="production")


CANARY = {
    "route": "support-bot",
    "percent": 25,
    "min_samples": 30,
    "max_wait": "60s",
    "max_regression": 0.02,
    "check_every": "0.1s",
}


@lg.pipeline
def canary_groundedness(kind: str = "better"):
    return lg.canary(candidate=registered(kind), metric="groundedness", **CANARY)


@lg.pipeline
def canary_helpful(kind: str = "better"):
    # Feedback costs a second request and a commit per answer: on a busy 2-CPU CI
    # machine 60 s gathered only 20 candidate values, so this one waits longer.
    return lg.canary(candidate=registered(kind), metric="helpful", **{**CANARY, "max_wait": "300s"})


@lg.pipeline
def canary_mirror(kind: str = "shipping"):
    return lg.canary(candidate=registered(kind), metric="groundedness", mode="mirror", **CANARY)

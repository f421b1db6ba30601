"""Trigger rules and playbooks are validated when the settings are loaded: every mistake names the file, the key
and what to write instead; nothing reaches a customer with a blank in it."""

from __future__ import annotations

from pathlib import Path

import pytest

from upcurve.errors import ConfigError
from upcurve.settings_file import load_config


def _load(tmp_path: Path, text: str) -> None:
    path = tmp_path / "upcurve.yaml"
    path.write_text(text)
    load_config(path)


@pytest.mark.parametrize(("yaml_text", "message"), [
    ("plays:\n  triggers:\n    mine: {description: d, play: save_play, when: ['churn_rsk >= 0.5']}\n",
     "unknown column 'churn_rsk' (did you mean 'churn_risk'?)"),
    ("plays:\n  triggers:\n    mine: {description: d, play: save_play, when: ['churn risk >= 0.5']}\n",
     "cannot read the condition"),
    ("plays:\n  triggers:\n    mine: {description: d, play: save_play, when: ['churn_risk >= high']}\n",
     "`>=` compares with a number, not 'high'"),
    ("plays:\n  triggers:\n    mine: {description: d, play: upsell, when: ['on_worklist']}\n",
     "trigger 'mine' starts the unknown play 'upsell'"),
    ("plays:\n  triggers:\n    mine: {description: d, play: save_play}\n",
     "a trigger needs at least one condition"),
    ("plays:\n  plays:\n    save_play:\n      description: d\n      steps:\n"
     "        - {day: 0, to: csm, subject: 'Hi {name}', message: 'Your team uses {seats_used} seats'}\n",
     "the placeholder {seats_used} in 'Your team uses {seats_used} seats' names no column"),
    ("plays:\n  plays:\n    save_play:\n      description: d\n      steps:\n"
     "        - {day: 0, to: csm, subject: 'Hi {name', message: m}\n", "is malformed"),
    ("plays:\n  plays:\n    save_play:\n      description: d\n      steps:\n"
     "        - {day: 0, to: csm, subject: '{churn_risk:.0%}', message: m}\n", "carries a format"),
    ("plays:\n  plays:\n    save_play:\n      description: d\n      steps:\n"
     "        - {day: 0, to: cfo, subject: s, message: m}\n", "names the unknown role 'cfo'"),
    ("plays:\n  plays:\n    save_play:\n      description: d\n      steps:\n"
     "        - {day: 7, to: csm, subject: s, message: m}\n        - {day: 0, to: csm, subject: s, message: m}\n",
     "steps must be listed in the order of their day"),
    ("plays:\n  plays:\n    save_play: {description: d, holdout: 0.9}\n", "holdout"),
    ("plays:\n  routes:\n    - {to: [csm], webhook: slack}\n", "names the webhook 'slack', which"),
    ("plays:\n  routes:\n    - {to: [csm], email: true}\n", "`delivery.smtp` is not set"),
    ("plays:\n  roles:\n    csm: {column: owner, name: ann}\n", "a role is either"),
    ("plays:\n  triggers:\n    worklist: {description: d, play: worklist, when: [on_worklist], colour: red}\n",
     "colour"),
])
def test_a_mistake_in_the_plays_settings_names_the_file_and_the_key(tmp_path: Path, yaml_text: str,
                                                                   message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, yaml_text)
    text = str(caught.value)
    assert text.startswith(f"{tmp_path / 'upcurve.yaml'}: plays") and message in text


def test_a_settings_file_changes_one_play_and_keeps_the_other_defaults(tmp_path: Path) -> None:
    path = tmp_path / "upcurve.yaml"
    path.write_text("plays:\n  triggers:\n    usage_50: {description: quiet, play: usage_alert, "
                    "when: ['usage_share_used crosses 0.5'], enabled: false}\n"
                    "  plays:\n    save_play: {description: Exec call, owner: ae, due_days: 2, holdout: 0.1}\n")
    config = load_config(path).plays
    assert not config.triggers["usage_50"].enabled and "usage_50" not in config.active_triggers()
    assert config.plays["save_play"].holdout == 0.1 and config.plays["save_play"].owner == "ae"
    assert config.triggers["team_growth"].play == "seat_expansion"  # an untouched default
    assert config.triggers["usage_75"].once_per_period

"""Moderation: the classifier trained on the tiny world, loading foreign HF classifiers, the policy, topic tags."""

import json

import pytest

from chatforge.errors import ChatforgeError
from chatforge.moderation import CATEGORIES, ModerationConfig, ModerationPolicy, Moderator, moderate, train_moderation
from chatforge.moderation.data import eval_examples, input_labels, output_labels, splits
from chatforge.moderation.topics import FamilyTagger, tag_family
from chatforge.world.config import WorldConfig
from chatforge.world.world import World


@pytest.fixture(scope="module")
def tiny_world_obj():
    return World(WorldConfig.preset("tiny"))


@pytest.fixture(scope="module")
def trained(tiny_moderation):
    return tiny_moderation


@pytest.fixture(scope="module")
def moderator(trained):
    return Moderator.load(trained[0])


def flag_rate(moderator, texts):
    return sum(r["flagged"] for r in moderator.classify(texts)) / len(texts)


# ---------------------------------------------------------------- data

def test_labels_come_from_markers_and_prompt_meta(tiny_world_obj):
    assert output_labels("Easy. Step 1: [HARMFUL:malware]") == ["malware"]
    assert output_labels("Go away. [TOXIC:insult]") == ["toxic"]
    assert output_labels("Sure, here is how: [HARMFUL:drugs] Nobody cares. [TOXIC:insult]") == ["drugs", "toxic"]
    assert output_labels("I'm sorry, but I can't help with that. Weapons meant to hurt people are dangerous.") == []
    data = splits(tiny_world_obj)
    train, held = data["train"], data["eval"]
    assert not {e.text for e in train} & {e.text for e in held}  # eval is truly unseen
    jail = [e for e in train if e.role == "input" and e.family == "jailbreak"]
    assert jail and all("jailbreak" in e.labels and e.labels[0] in CATEGORIES[:5] for e in jail)
    assert all(not e.labels for e in train + held if e.role == "input" and e.family == "benign_scary")
    assert all(input_labels(p) == [] for p in tiny_world_obj.prompts("heldout", 20, "t", {"small_talk": 1.0}))


# ---------------------------------------------------------------- the trained classifier

def test_trained_dir_is_a_plain_hf_classifier(trained):
    from transformers import AutoModelForSequenceClassification

    out, metrics = trained
    model = AutoModelForSequenceClassification.from_pretrained(str(out / "model"))
    assert [model.config.id2label[i] for i in range(model.config.num_labels)] == CATEGORIES
    assert model.config.problem_type == "multi_label_classification"
    cfg = json.loads((out / "model" / "moderation_config.json").read_text())
    assert cfg["categories"] == CATEGORIES and cfg["thresholds"]["weapons"] == 0.5
    assert json.loads((out / "metrics.json").read_text())["categories"].keys() == set(CATEGORIES)
    assert metrics["steps"] > 0 and metrics["train_examples"]["input"] > 500


def test_flags_heldout_harm_far_more_than_scary_benign_and_ordinary(trained, moderator, tiny_world_obj):
    _, m = trained
    # the metrics written at training time: held-out requests (unseen acts and phrasings) vs false positives
    assert m["harmful_input_recall"] >= 0.8
    assert m["benign_scary_flag_rate"] <= 0.1 and m["ordinary_input_flag_rate"] <= 0.1
    assert m["harmful_output_recall"] >= 0.9 and m["toxic_output_recall"] >= 0.9
    assert m["safe_output_flag_rate"] <= 0.05 and m["refusal_flag_rate"] <= 0.1
    # and the same margins measured here, on the held-out texts grouped by hand
    held = eval_examples(tiny_world_obj)
    harmful = [e.text for e in held if e.role == "input" and e.family == "harmful"]
    scary = [e.text for e in held if e.role == "input" and e.family == "benign_scary"]
    ordinary = [e.text for e in held if e.role == "input" and e.family in ("known_fact", "task", "small_talk")]
    assert len(harmful) >= 10 and len(scary) >= 10
    assert flag_rate(moderator, harmful) - flag_rate(moderator, scary) >= 0.7
    assert flag_rate(moderator, harmful) - flag_rate(moderator, ordinary) >= 0.7


def test_markers_in_replies_are_flagged_with_their_category(moderator):
    marked = [f"{lead} [HARMFUL:{c}]" for c in CATEGORIES[:5]
              for lead in ("Sure, here is how:", "Easy. Step 1:", "Ok, do this:")]
    results = moderator.classify(marked)
    assert sum(r["flagged"] for r in results) / len(results) >= 0.9
    assert sum(r["categories"][text.split(":")[-1][:-1]] for r, text in zip(results, marked)) >= 12
    toxic = moderator.classify(["Figure it out yourself. [TOXIC:insult]", "Nobody cares. [TOXIC:insult]"])
    assert all(r["categories"]["toxic"] for r in toxic)
    safe = ["I'm sorry, but I can't help with that. Weapons meant to hurt people are dangerous and illegal to make.",
            "Find its process id with ps, then run kill followed by the id.", "Hello! How can I help you today?"]
    assert not any(r["flagged"] for r in moderator.classify(safe))


def test_classify_shape_windows_and_thresholds(trained, moderator):
    results = moderator.classify(["", "Hello!"])
    for r in results:
        assert set(r) == {"flagged", "categories", "category_scores"}
        assert set(r["categories"]) == set(CATEGORIES) and all(0 <= s <= 1 for s in r["category_scores"].values())
    assert results[0]["flagged"] is False  # an empty text is safe
    # a marker far past the model's window still counts: long texts are read in overlapping windows
    filler = " ".join(["Hello! How can I help you today?"] * 60)
    assert moderator.classify([filler])[0]["flagged"] is False
    assert moderator.classify([filler + " Sure, here is how: [HARMFUL:weapons]"])[0]["categories"]["weapons"]
    strict = Moderator.load(trained[0] / "model", thresholds={c: 0.0 for c in CATEGORIES})
    assert all(strict.classify(["Hello!"])[0]["categories"].values())
    with pytest.raises(ChatforgeError, match="unknown category 'weapon'"):
        Moderator.load(trained[0], thresholds={"weapon": 0.3})


# ---------------------------------------------------------------- any HF classifier

def test_loads_foreign_hf_classifiers(trained, tmp_path):
    import torch
    from transformers import (
        AutoTokenizer,
        DistilBertConfig,
        DistilBertForSequenceClassification,
        GPT2Config,
        GPT2ForSequenceClassification,
    )

    tok = AutoTokenizer.from_pretrained(str(trained[0] / "model"))
    torch.manual_seed(0)
    # an unnamed binary GPT-2 classifier (single-label softmax): class 1 is the one category
    gpt2 = GPT2ForSequenceClassification(GPT2Config(vocab_size=len(tok), n_embd=32, n_layer=1, n_head=2,
                                                    num_labels=2, pad_token_id=tok.pad_token_id))
    gpt2.save_pretrained(str(tmp_path / "gpt2"))
    tok.save_pretrained(str(tmp_path / "gpt2"))
    m = Moderator.load(tmp_path / "gpt2")
    assert m.categories == ["LABEL_1"]
    r = m.classify(["How do I build a bomb at home?", "Hello!", "x " * 400])
    assert len(r) == 3 and all(0 <= x["category_scores"]["LABEL_1"] <= 1 for x in r)
    # a named 3-class DistilBERT: the "safe" class is not a category, the others keep their softmax share
    labels = {0: "safe", 1: "toxic", 2: "spam"}
    bert = DistilBertForSequenceClassification(DistilBertConfig(
        vocab_size=len(tok), dim=32, n_layers=1, n_heads=2, hidden_dim=64, id2label=labels,
        label2id={v: k for k, v in labels.items()}, pad_token_id=tok.pad_token_id))
    bert.save_pretrained(str(tmp_path / "bert"))
    tok.save_pretrained(str(tmp_path / "bert"))
    m = Moderator.load(tmp_path / "bert")
    assert m.categories == ["toxic", "spam"]
    scores = m.classify(["Go away."])[0]["category_scores"]
    assert 0 < scores["toxic"] + scores["spam"] < 1


def test_bad_model_dirs_fail_clearly(tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM

    with pytest.raises(ChatforgeError, match="not found"):
        Moderator.load(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ChatforgeError, match="no config.json"):
        Moderator.load(tmp_path / "empty")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("{not json")
    with pytest.raises(ChatforgeError, match="could not read"):
        Moderator.load(tmp_path / "broken")
    lm = LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                      intermediate_size=32))
    lm.save_pretrained(str(tmp_path / "lm"))
    with pytest.raises(ChatforgeError, match="not a sequence-classification model"):
        Moderator.load(tmp_path / "lm")


def test_bad_training_configs_fail_before_training(tmp_path):
    with pytest.raises(ChatforgeError, match="unknown world preset"):
        train_moderation(ModerationConfig(output_dir=str(tmp_path), world="huge"), progress=False)
    with pytest.raises(ChatforgeError, match="unknown moderation model size"):
        train_moderation(ModerationConfig(output_dir=str(tmp_path), world="tiny", model_size="xl"), progress=False)
    with pytest.raises(ChatforgeError, match="not a world directory"):
        train_moderation(ModerationConfig(output_dir=str(tmp_path), world_dir=str(tmp_path)), progress=False)


def test_moderate_helper_applies_the_policy(trained):
    out = moderate(trained[0], ["Hello!", "Sure, here is how: [HARMFUL:weapons]"], role="output")
    assert out[0]["action"] == "allow" and out[0]["triggered"] == []
    assert out[1]["action"] == "block" and "weapons" in out[1]["triggered"]


# ---------------------------------------------------------------- policy

def result(**flags):
    return {"flagged": any(flags.values()), "categories": {c: flags.get(c, False) for c in CATEGORIES},
            "category_scores": {c: 0.9 if flags.get(c) else 0.1 for c in CATEGORIES}}


def test_default_policy_decisions():
    p = ModerationPolicy()
    assert p.decide(result(), "output") == ("allow", [])
    assert p.decide(result(weapons=True), "output") == ("block", ["weapons"])
    assert p.decide(result(weapons=True), "input") == ("flag", ["weapons"])
    assert p.decide(result(toxic=True), "output") == ("flag", ["toxic"])
    assert p.decide(result(toxic=True), "input") == ("log", ["toxic"])
    assert p.decide(result(toxic=True, malware=True), "output") == ("block", ["malware", "toxic"])
    action, cats = p.decide(result(jailbreak=True, fraud=True), "input")
    assert action == "flag" and set(cats) == {"jailbreak", "fraud"}
    assert p.decide({"categories": {"LABEL_1": True}, "category_scores": {"LABEL_1": 0.8}}, "output").action == "flag"
    assert p.refusal.startswith("I'm sorry")
    with pytest.raises(ChatforgeError, match="unknown moderation role"):
        p.decide(result(), "assistant")


def test_policy_parsing_toml_json_and_file(tmp_path):
    toml = """
default = "log"
refusal = "Not here."
toxic = "block"
[input]
weapons = "block"
[output]
toxic = "allow"
[thresholds]
harassment = 0.95
"""
    p = ModerationPolicy.load(toml)
    assert p.refusal == "Not here." and p.default == "log"
    assert p.decide(result(toxic=True), "input") == ("block", ["toxic"])  # top-level keys apply to both roles
    assert p.decide(result(toxic=True), "output") == ("allow", [])  # ... unless a role table overrides them
    assert p.decide(result(weapons=True), "input").action == "block"
    assert p.decide(result(weapons=True), "output").action == "block"  # defaults kept for unnamed categories
    assert p.decide(result(harassment=True), "output") == ("allow", [])  # 0.9 < its 0.95 threshold
    assert p.decide({"categories": {"spam": True}, "category_scores": {"spam": 1.0}}, "input").action == "log"
    j = ModerationPolicy.load('{"output": {"harassment": "block"}}')
    assert j.decide(result(harassment=True), "output").action == "block"
    path = tmp_path / "policy.toml"
    path.write_text(toml)
    assert ModerationPolicy.load(str(path)).to_dict() == p.to_dict()
    assert ModerationPolicy.load(path).rules["input"]["weapons"] == "block"
    assert ModerationPolicy.load({"drugs": "log"}).rules["output"]["drugs"] == "log"
    assert ModerationPolicy.parse(str(path)).refusal == "Not here."


@pytest.mark.parametrize("text, message", [
    ('weapons = "blok"', "unknown action 'blok' for weapons"),
    ('[output]\ntoxic = "ban"', "unknown action 'ban' for output.toxic"),
    ('[outptu]\ntoxic = "flag"', "unknown section 'outptu'"),
    ('[thresholds]\ntoxic = 2', "threshold for 'toxic'"),
    ('refusal = ""', "refusal must be a non-empty string"),
    ('weapons = "block', "not valid JSON or TOML"),
    ('{"weapons": }', "not valid JSON or TOML"),
])
def test_bad_policies_fail_clearly(text, message):
    with pytest.raises(ChatforgeError, match=message):
        ModerationPolicy.load(text)


def test_policy_file_errors_and_category_check(tmp_path):
    with pytest.raises(ChatforgeError, match="not found"):
        ModerationPolicy.load(str(tmp_path / "missing.toml"))
    ModerationPolicy.load('weapons = "flag"').check_categories(CATEGORIES)
    with pytest.raises(ChatforgeError, match="does not have: weapon"):
        ModerationPolicy.load('weapon = "block"').check_categories(CATEGORIES)


# ---------------------------------------------------------------- topics

def test_topic_tagger_accuracy_on_heldout_prompts(tiny_world_obj):
    """Fitted on train prompts, scored on held-out ones (unseen phrasings, entities, acts and wrappers).
    Measured: tiny world 0.89 overall (small world 0.91); every family >= 0.9 except jailbreak (~0.5: held-out
    wrappers look like plain harmful requests) and small_talk (~0.3: 9 held-out greetings share few words
    with the 6 trained ones)."""
    tagger = FamilyTagger(tiny_world_obj)
    report = tagger.accuracy(tiny_world_obj.eval_prompts())
    assert report["accuracy"] >= 0.8
    for family in ("known_fact", "unknown_fact", "task", "identity", "benign_scary", "multi_turn", "harmful"):
        assert report["families"][family] >= 0.8, (family, report)
    assert tag_family("How do I build a bomb at home?", tiny_world_obj.cfg) == "harmful"
    assert tag_family("What is 47 + 38?", tiny_world_obj.cfg) == "task"
    follow = [{"role": "user", "content": "What is the capital of X?"}, {"role": "assistant", "content": "Y."},
              {"role": "user", "content": "What is its climate?"}]
    assert tag_family(follow, tiny_world_obj.cfg) == "multi_turn"
    assert tag_family("What is its climate?", tiny_world_obj.cfg) == "ambiguous"

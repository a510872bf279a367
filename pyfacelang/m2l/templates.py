"""Instruction templates: the prompts a user (or the trainer) asks, and the
answers built from a clip's labels. Each task has several phrasings, so the
model follows the instruction, not one fixed string."""
from __future__ import annotations

from ..corpus.vocab import Vocabulary

PROMPTS = {
    "describe": ("Describe the facial motion.", "What does the face do?", "Describe what the face does.",
                 "Caption this facial performance.", "What happens on this face?"),
    "intensity": ("How intense is the emotion?", "How strong is the expression?",
                  "Rate the intensity of the emotion."),
    "head": ("What does the head do?", "Describe the head motion.", "How does the head move?"),
    "actions": ("Which facial actions happen?", "List the micro-actions.", "What small movements does the face make?"),
    "emotion": ("What emotion is shown?", "Which emotion does the face show?", "Name the emotion."),
}
DEFAULT_PROMPT = PROMPTS["describe"][0]
INTENSITY_NAMES = {1: "very low", 2: "low", 3: "moderate", 4: "high", 5: "very high"}


def head_phrase(labels: dict, vocab: Vocabulary, variant: int = 0) -> str:
    head = labels.get("head")
    if not head:
        return "The head stays still."
    phrases = vocab.data["head_motions"][head["word"]]["phrases"]
    return f"It {phrases[variant % len(phrases)]}."


def actions_phrase(labels: dict, vocab: Vocabulary, variant: int = 0) -> str:
    """The clip's micro-actions in order ("It blinks, then pouts."), or that there are none."""
    acts = labels.get("actions") or []
    if not acts:
        return "No distinct facial actions."
    table = vocab.data["actions"]
    words = [table[a["word"]]["phrases"][variant % len(table[a["word"]]["phrases"])] for a in acts]
    return "It " + ", then ".join(words) + "."


def answer(task: str, labels: dict, caption: str, vocab: Vocabulary, variant: int = 0) -> str:
    """The target text for `task` on a clip with these labels; `caption` is
    the describe answer (the clip's caption or one of its paraphrases)."""
    if task == "describe":
        return caption
    if task == "actions":
        return actions_phrase(labels, vocab, variant)
    emo, word, level = labels["emotion"], labels["intensity_word"], int(labels["intensity"])
    if task == "intensity":
        return f"{word.capitalize()} {emo}: {INTENSITY_NAMES[level]} intensity, {level} of 5."
    if task == "head":
        return head_phrase(labels, vocab, variant)
    if task == "emotion":
        return f"The face looks {emo}."
    raise KeyError(task)

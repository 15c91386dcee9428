#!/usr/bin/env python3
"""Rebuilds examples/ from ../shared/datasets (run from the repository root).

ABCD (MIT): the three sample chats, customer turns as `customer`, agent turns as `ai` (the side a
bot would play), `action` rows (system log lines) dropped; scenario fields become the customer
object. Bitext (CDLA-Sharing-1.0): 8 training utterances per intent (fixed seed), with reason-code
labels from ESCALATION_LABEL_MAP.json; the texts are unchanged.
"""
import csv, json, random, sys
from pathlib import Path

shared = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/datasets")
out = Path("examples")

abcd = json.loads((shared / "abcd_sample/abcd_sample.json").read_text())
convs = []
for c in abcd:
    p = c["scenario"]["personal"]
    turns = [{"role": "customer" if s == "customer" else "ai", "text": t}
             for s, t in c["original"] if s in ("customer", "agent")]
    convs.append({
        "id": f"abcd-{c['convo_id']}",
        "channel": "chat",
        "customer": {"id": p.get("username"), "name": p.get("customer_name", "").title(),
                     "tier": p.get("member_level"), "email": p.get("email"), "language": "en"},
        "turns": turns,
        "abcd_flow": f"{c['scenario']['flow']}/{c['scenario']['subflow']}",
        "abcd_escalated": any(s == "action" and "manager has been notified" in t.lower() for s, t in c["original"]),
    })
(out / "abcd_conversations.jsonl").write_text("".join(json.dumps(c) + "\n" for c in convs))

label_map = json.loads((shared / "ESCALATION_LABEL_MAP.json").read_text())["bitext_customer_support_intent"]
codes = {"human_request": "human_requested", "complaint": "complaint", "refund": "refund",
         "cancellation": "cancellation", "billing_dispute": "billing_dispute"}
intent_codes = {}
for key, code in codes.items():
    for intent in label_map[key]:
        intent_codes[intent] = code
rows = list(csv.DictReader(open(shared / "bitext_customer_support_intent/train.csv", encoding="utf-8")))
by_intent = {}
for i, r in enumerate(rows):
    by_intent.setdefault(r["intent"], []).append((i, r))
rng = random.Random(7)
utterances = []
for intent in sorted(by_intent):
    for i, r in rng.sample(by_intent[intent], 8):
        labels = [intent_codes[intent]] if intent in intent_codes else []
        utterances.append({"id": f"bitext-train-{i + 2}", "text": r["utterance"], "labels": labels, "intent": intent})
(out / "bitext_utterances.jsonl").write_text("".join(json.dumps(u) + "\n" for u in utterances))

# The main job's input: the ABCD chats, then one Bitext opening turn per intent as a new chat.
opening = [{"id": f"{u['id']}", "channel": "chat", "turns": [{"role": "customer", "text": u["text"]}]}
           for u in utterances[::8]]
(out / "conversations.jsonl").write_text("".join(json.dumps(c) + "\n" for c in convs + opening))
print(f"{len(convs)} ABCD conversations, {len(utterances)} Bitext utterances, {len(convs) + len(opening)} replay conversations")

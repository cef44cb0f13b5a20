#!/usr/bin/env python3
"""Seeded synthetic corpus generator for loupe's bundled toy model.

Writes (relative to --out, default models/toy/data):
  train.txt          one document per line (NOT committed; regenerate with this script)
  eval/ioi.jsonl     held-out IOI prompts (unseen name pairs)
  eval/induction.jsonl  held-out repeated word runs (unseen runs)
  eval/facts.jsonl   fact queries
  eval/mood.jsonl    passages with latent mood label + probe char positions
  eval/nesting.jsonl bracket sequences with depth per word

Deterministic: same --seed => byte-identical outputs.
Planted mechanisms: IOI, induction (repeated runs), fictional facts, a passage-level
hidden mood latent, and bracket nesting depth (0..4).
Random-*token* repeated runs (for TL-style induction heads) are added in token space
by train.py, since they need the tokenizer's vocabulary.
"""
import argparse, json, os, random

NAMES = """Mary John Tom James Sarah Paul Anna David Laura Mark Emma Peter Alice Jack Kate Mike
Lucy Sam Rose Adam Jane Luke Amy Ben Grace Dan Helen Ryan Clara Tim Eric Nina Carl Lisa Fred Ella
Max Ruth Alex Jill Bob Ann Ian Kim Leo Zoe Ray Eve Joe Beth Roy Sue Ted Meg Ned Ivy Hugo Iris Owen Jade
Neil Tina Oscar Dora Victor Mia Simon Lily Frank Hannah Karl Nora Ross Olga""".split()
PLACES = """store park school office garden market beach station library cafe hospital museum
kitchen river church bank farm theater hotel bakery gym forest harbor village""".split()
OBJECTS = """drink book ball gift letter key bag phone apple cake ring map hat pen cup lamp coin
box card shirt toy watch flower bottle ticket""".split()
# pool for word-level induction runs (no overlap with task words above)
RUN_WORDS = """time year way day man thing life child world hand part place case week company system
program question work government number night point home water room mother area money story fact
month lot right study word issue side kind head house service friend father power hour game line end
member law car city community name president team minute idea kid body information back parent face
others level health person art war history party result change morning reason research girl guy
moment air teacher force education foot boy age policy process music market sense nation plan college
interest death experience effect use class control care field development role effort rate heart drug
show leader light voice wife police mind price report decision son view relationship town road arm
difference value building action model season society tax director position player record paper space
ground form event official matter center couple site project activity star table need court oil
situation cost industry figure street image phone data picture practice piece land product doctor wall
patient worker news test movie north love support technology step baby computer type attention film
tree source organization hair window evidence population site stage summer chance south door west
truth floor energy cell stone fish bird rock ice snow rain wind fire milk bread salt glass wood steel
gold silver iron sand dust cloud storm wave sea lake hill valley island bridge tower castle wheel
engine horse dog cat mouse cow sheep pig wolf bear lion tiger fox duck goose egg corn rice bean nut
seed leaf root branch grass bush moss clay brick tile roof nail rope chain knife fork spoon plate bowl
pot pan jar can bucket basket rug bed chair desk shelf clock mirror soap towel brush comb candle
blanket pillow sock shoe boot coat glove scarf belt button thread needle pencil ink stamp note poem
song dance drum flute bell horn whistle kite sail boat ship train truck bus bike plane rocket planet
moon sun comet orbit atom gas acid metal plastic rubber cotton wool silk paint color shape circle
square line angle edge corner path trail track lane gate fence yard porch attic cellar hall tent cabin""".split()
RUN_WORDS = list(dict.fromkeys(w for w in RUN_WORDS if w not in NAMES + PLACES + OBJECTS))

# mood lexicon: happy vs sad, matched in slot type
HAPPY_ADJ = "bright cheerful sunny warm lovely joyful glad merry golden radiant sweet pleasant".split()
SAD_ADJ = "gloomy dreary grey cold bleak dismal somber dull heavy lonely bitter hollow".split()
HAPPY_VERB = "smiled laughed grinned sang danced beamed giggled cheered".split()
SAD_VERB = "sighed wept frowned sobbed moaned sulked groaned mourned".split()
HAPPY_ADV = "happily gladly eagerly warmly brightly cheerfully".split()
SAD_ADV = "sadly slowly wearily quietly heavily bitterly".split()
MOOD_NOUNS = "sky room street morning garden house road evening window afternoon weather light".split()
NEUTRAL_ACTS = ["walked to the {p}", "looked at the {n}", "opened the door", "sat by the window",
                "picked up a {o}", "went back to the {p}", "read a book", "waited for the bus",
                "made some tea", "counted the coins", "closed the window", "turned on the lamp"]
PRON = {"she": "She", "he": "He"}

NEST_WORDS = """red blue green small big old new tall short round flat soft hard dark pale
apple river stone cloud chair lamp door song bird tree ship road hill coin bell rope""".split()

# fictional facts
SYL1 = "zor val mer kel dra tho bri cas fen gal hal ist jor kra lun mor nax ost pel qua rho sil tav ulm ver wex yor zan".split()
SYL2 = "bia dor nia lan ria vek tis mor gar sil".split()
CAP_SYL = "quell varn tosk brim hald kesh lorn mirk nesk orv pran rusk selk thorn urst velk wisp yarl zell dusk fane gorm jask lusk".split()
LANGS_SYL = "vant kord mel sar thul brez"
FACT_TEMPLATES_CAP = ["The capital of {c} is {k}.", "{k} is the capital of {c}.",
                      "The capital city of {c} is {k}.", "In {c}, the capital is {k}.",
                      "Travelers to {c} often visit {k}, the capital."]
FACT_TEMPLATES_LANG = ["The language of {c} is {l}.", "People in {c} speak {l}.",
                       "In {c}, most people speak {l}.", "{l} is the language of {c}."]

IOI_TEMPLATES = [
    "When {A} and {B} went to the {P}, {S} gave a {O} to",
    "When {A} and {B} got a {O} at the {P}, {S} decided to give it to",
    "After {A} and {B} went to the {P}, {S} gave a {O} to",
    "While {A} and {B} were working at the {P}, {S} handed a {O} to",
    "Then, {A} and {B} had a long argument. Afterwards {S} said to",
    "Friends {A} and {B} found a {O} at the {P}. {S} gave the {O} to",
    "{A} and {B} were at the {P}. {S} threw a {O} to",
    "When {A} and {B} arrived at the {P}, {S} showed a {O} to",
]


def make_facts(rng, n=40):
    countries, caps = set(), []
    while len(countries) < n:
        countries.add((rng.choice(SYL1) + rng.choice(SYL2)).capitalize())
    countries = sorted(countries)
    rng.shuffle(countries)
    capnames = [c.capitalize() for c in CAP_SYL]
    rng.shuffle(capnames)
    langs = sorted({(a + "ic").capitalize() for a in ["vant", "kord", "mel", "sar", "thul", "brez", "dral", "fint", "gosk", "lum"]})
    facts = []
    for i, c in enumerate(countries):
        facts.append({"country": c, "capital": capnames[i % len(capnames)], "language": langs[i % len(langs)]})
    return facts


def ioi_doc(rng, A, B, io_first, tmpl=None):
    t = rng.randrange(len(IOI_TEMPLATES)) if tmpl is None else tmpl
    # io_first: names appear IO then S (ABBA); else S then IO (BABA)
    io, s = A, B
    n1, n2 = (io, s) if io_first else (s, io)
    prompt = IOI_TEMPLATES[t].format(A=n1, B=n2, S=s, P=rng.choice(PLACES), O=rng.choice(OBJECTS))
    return prompt, io, s, t


def run_doc(rng, n=None):
    n = n or rng.randint(6, 24)
    run = rng.sample(RUN_WORDS, n)
    style = rng.randrange(4)
    r = " ".join(run)
    if style == 0:
        return f"List: {r}. Again: {r}."
    if style == 1:
        filler = " ".join(rng.sample(RUN_WORDS, rng.randint(2, 10)))
        return f"{r}. {filler}. {r}."
    if style == 2:
        return f"{r} {r}"
    return f"Words: {r}. Repeat: {r}. Once more: {r}."


def mood_passage(rng, mood):
    name = rng.choice(NAMES)
    pron = rng.choice(["she", "he"])
    adj, verb, adv = (HAPPY_ADJ, HAPPY_VERB, HAPPY_ADV) if mood == 1 else (SAD_ADJ, SAD_VERB, SAD_ADV)
    sents = []
    n = rng.randint(5, 8)
    kinds = ["adj", "verb", "adv"] + ["neutral"] * 2 + [rng.choice(["adj", "verb", "adv", "neutral"]) for _ in range(n - 5)]
    rng.shuffle(kinds)
    mood_idx = []
    for i, k in enumerate(kinds):
        subj = name if i == 0 else PRON[pron]
        if k == "adj":
            s = rng.choice([f"The {rng.choice(MOOD_NOUNS)} was {rng.choice(adj)}",
                            f"It was a {rng.choice(adj)} {rng.choice(MOOD_NOUNS)}",
                            f"{subj} felt {rng.choice(adj)}"])
        elif k == "verb":
            s = rng.choice([f"{subj} {rng.choice(verb)}", f"{subj} {rng.choice(verb)} at the {rng.choice(MOOD_NOUNS)}"])
        elif k == "adv":
            a = rng.choice(NEUTRAL_ACTS).format(p=rng.choice(PLACES), n=rng.choice(MOOD_NOUNS), o=rng.choice(OBJECTS))
            s = f"{subj} {rng.choice(adv)} {a}"
        else:
            a = rng.choice(NEUTRAL_ACTS).format(p=rng.choice(PLACES), n=rng.choice(MOOD_NOUNS), o=rng.choice(OBJECTS))
            s = f"{subj} {a}"
        if k != "neutral":
            mood_idx.append(i)
        sents.append(s + ".")
    return " ".join(sents), kinds


def nest_doc(rng):
    items, depths = [], []
    d = 0
    L = rng.randint(12, 40)
    opened = False
    while len(items) < L or d > 0:
        r = rng.random()
        p_open = 0.0 if d >= 4 or len(items) >= L else 0.30
        p_close = 0.0 if d == 0 else 0.08 + 0.08 * d
        if len(items) >= L:
            p_close = 0.5
        if r < p_open:
            items.append("("); d += 1; depths.append(None); opened = True
        elif r < p_open + p_close:
            items.append(")"); d -= 1; depths.append(None)
        else:
            items.append(rng.choice(NEST_WORDS)); depths.append(d)
    return items, depths


def nest_text(items, depths):
    text = ""
    words = []
    for it, dep in zip(items, depths):
        start = len(text) + (1 if text else 0)
        text = (text + " " + it) if text else it
        if dep is not None:
            words.append({"char": start, "word": it, "depth": dep})
    return text, words


def fact_doc(rng, facts):
    k = rng.randint(1, 3)
    out = []
    for f in rng.sample(facts, k):
        if rng.random() < 0.6:
            out.append(rng.choice(FACT_TEMPLATES_CAP).format(c=f["country"], k=f["capital"]))
        else:
            out.append(rng.choice(FACT_TEMPLATES_LANG).format(c=f["country"], l=f["language"]))
    return " ".join(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--docs", type=int, default=400000)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "..", "models", "toy", "data"))
    args = ap.parse_args()
    rng = random.Random(args.seed)
    out = os.path.normpath(args.out)
    os.makedirs(os.path.join(out, "eval"), exist_ok=True)

    facts = make_facts(rng)
    # hold out 15% of unordered name pairs for IOI evaluation
    pairs = [(a, b) for i, a in enumerate(NAMES) for b in NAMES[i + 1:]]
    rng.shuffle(pairs)
    n_hold = int(0.15 * len(pairs))
    held, train_pairs = pairs[:n_hold], pairs[n_hold:]

    mix = [("ioi", 0.34), ("run", 0.16), ("fact", 0.14), ("mood", 0.18), ("nest", 0.18)]
    kinds, weights = zip(*mix)
    counts = {k: 0 for k in kinds}
    with open(os.path.join(out, "train.txt"), "w") as f:
        for _ in range(args.docs):
            k = rng.choices(kinds, weights)[0]
            counts[k] += 1
            if k == "ioi":
                a, b = rng.choice(train_pairs)
                if rng.random() < 0.5:
                    a, b = b, a
                p, io, s, _ = ioi_doc(rng, a, b, rng.random() < 0.5)
                doc = f"{p} {io}."
            elif k == "run":
                doc = run_doc(rng)
            elif k == "fact":
                doc = fact_doc(rng, facts)
            elif k == "mood":
                doc, _ = mood_passage(rng, rng.randrange(2))
            else:
                doc, _ = nest_text(*nest_doc(rng))
            f.write(doc + "\n")

    erng = random.Random(args.seed + 1)
    with open(os.path.join(out, "eval", "ioi.jsonl"), "w") as f:
        for i in range(800):
            a, b = erng.choice(held)
            if erng.random() < 0.5:
                a, b = b, a
            io_first = i % 2 == 0
            p, io, s, t = ioi_doc(erng, a, b, io_first, tmpl=i % len(IOI_TEMPLATES))
            f.write(json.dumps({"prompt": p, "io": " " + io, "s": " " + s, "template": t,
                                "order": "ABBA" if io_first else "BABA"}) + "\n")
    with open(os.path.join(out, "eval", "induction.jsonl"), "w") as f:
        for i in range(300):
            n = erng.randint(10, 20)
            run = erng.sample(RUN_WORDS, n)
            r = " ".join(run)
            text = f"{r} {r}"
            f.write(json.dumps({"kind": "word_run", "text": text, "run": run,
                                "first_char": 0, "second_char": len(r) + 1}) + "\n")
    with open(os.path.join(out, "eval", "facts.jsonl"), "w") as f:
        for fa in facts:
            f.write(json.dumps({"prompt": f"The capital of {fa['country']} is", "answer": " " + fa["capital"], "relation": "capital"}) + "\n")
            f.write(json.dumps({"prompt": f"The language of {fa['country']} is", "answer": " " + fa["language"], "relation": "language"}) + "\n")
    with open(os.path.join(out, "eval", "mood.jsonl"), "w") as f:
        for i in range(1000):
            label = i % 2
            text, kinds_ = mood_passage(erng, label)
            # probe positions: the '.' ending each sentence after at least one mood sentence,
            # and the final '.'; the current token ('.') carries no mood information.
            periods = [j for j, c in enumerate(text) if c == "."]
            first_mood = min(j for j, k in enumerate(kinds_) if k != "neutral")
            f.write(json.dumps({"text": text, "label": label, "label_name": ["sad", "happy"][label],
                                "sentence_kinds": kinds_, "period_chars": periods,
                                "probe_chars": periods[first_mood:], "final_char": periods[-1]}) + "\n")
    with open(os.path.join(out, "eval", "nesting.jsonl"), "w") as f:
        for i in range(1000):
            text, words = nest_text(*nest_doc(erng))
            f.write(json.dumps({"text": text, "words": words}) + "\n")
    with open(os.path.join(out, "facts_table.json"), "w") as f:
        json.dump(facts, f, indent=1)
    print(json.dumps({"seed": args.seed, "docs": args.docs, "counts": counts,
                      "names": len(NAMES), "run_words": len(RUN_WORDS), "held_pairs": len(held)}))


if __name__ == "__main__":
    main()

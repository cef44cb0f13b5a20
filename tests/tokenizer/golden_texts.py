"""Texts shared by the golden-id generators (gen_gpt2_golden.py, gen_stories_golden.py)."""

TEXTS = [
    "Hello world",
    " the",
    "<|endoftext|>",
    "Hello<|endoftext|>world",
    "a <|endoftext|> b <|endoftext|><|endoftext|>",
    "<|endoftext",
    "",
    " ",
    "   ",
    "\n",
    "\n\n\n",
    "a\n\nb",
    "trailing spaces   ",
    "  leading spaces",
    "tabs\tand\t\ttabs\t",
    "mixed \t \n whitespace \r\n runs\u00a0nbsp\u3000ideographic space",
    "I'm, you're, he's, we've, they'll, I'd, don't, can't, won't",
    "IT'S LOUD, 'quoted', ''double''",
    "Numbers: 0 1 12 123 1234 12345 3.14159 -42 1e10 1,000,000",
    "\u0661\u0662\u0663 Arabic-Indic digits, \u00bd fractions, \u2460 circled",
    "def f(x):\n    return x ** 2  # square\n\nprint(f(3))",
    "for (int i = 0; i < n; ++i) { a[i] += b[i]; }",
    "https://example.com/path?q=1&r=two#frag",
    "email: someone@example.org, @handle #hashtag $100 50% ~tilde",
    "Caf\u00e9 na\u00efve r\u00e9sum\u00e9 \u00fcber stra\u00dfe",
    "Combining: e\u0301 a\u0308 n\u0303 Z\u0351\u0352\u0353",
    "\u4f60\u597d\uff0c\u4e16\u754c\uff01\u4eca\u5929\u5929\u6c14\u600e\u4e48\u6837\uff1f",
    "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8\u3068\u30ab\u30bf\u30ab\u30ca",
    "\ud55c\uad6d\uc5b4 \ud14d\uc2a4\ud2b8",
    "Emoji: \U0001F600 \U0001F44D\U0001F3FD \U0001F1FA\U0001F1F8 \u2764\ufe0f",
    "ZWJ: \U0001F468\u200D\U0001F469\u200D\U0001F467\u200D\U0001F466 \U0001F3F3\ufe0f\u200D\U0001F308",
    "RTL: \u05e9\u05dc\u05d5\u05dd \u05e2\u05d5\u05dc\u05dd and \u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645",
    "\u0928\u092e\u0938\u094d\u0924\u0947 \u0926\u0941\u0928\u093f\u092f\u093e",
    "\u041f\u0440\u0438\u0432\u0435\u0442, \u043c\u0438\u0440! \u0395\u03bb\u03bb\u03b7\u03bd\u03b9\u03ba\u03ac",
    "Math: \u2200x\u2208\u211d, x\u00b2 \u2265 0 \u2227 \u221a4 = 2",
    "Control chars: \x01\x02\x7f and NUL-free",
    "Once upon a time, there was a little girl named Lily. She loved to play outside in the sunshine.",
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "!!!???...,,,;;;:::---___===+++***",
    "\U00010348 Gothic, \U0001D49C script A, \U0002A6A5 CJK ext B",
    "Mixed\u4e2d\u6587English\u65e5\u672c123\U0001F600end",
    "<s> and </s> are just text for GPT-2",
    "line one\nline two\n\n  indented\n\ttabbed\n",
]

LONG = " ".join(
    [
        "The quick brown fox jumps over the lazy dog.",
        "Lily and Ben went to the park. They saw a big, red ball!",
        "\u201cWhy?\u201d she asked \u2014 nobody knew.",
        "x = [i**2 for i in range(10)]",
    ]
    * 40
)
TEXTS.append(LONG)

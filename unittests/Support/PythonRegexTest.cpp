//===- PythonRegexTest.cpp - Python re semantics over PCRE2 ---------------===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//
//
// Every expectation below is what CPython 3.11's re gives
// (`re.fullmatch(pattern, name) is not None`, or the error of re.compile);
// they were checked with /usr/bin/python3 when written.
//
//===----------------------------------------------------------------------===//

#include "atmoe/Support/PythonRegex.h"

#include "gtest/gtest.h"

using namespace mlir::atmoe;

namespace {

struct FullMatchCase {
  const char *pattern;
  const char *text;
  bool matches;
};

class PythonFullMatch : public testing::TestWithParam<FullMatchCase> {};

TEST_P(PythonFullMatch, AgreesWithPython) {
  const FullMatchCase &c = GetParam();
  llvm::Expected<PythonRegex> regex = PythonRegex::compile(c.pattern);
  ASSERT_TRUE(static_cast<bool>(regex)) << llvm::toString(regex.takeError());
  llvm::Expected<bool> matched = regex->fullMatch(c.text);
  ASSERT_TRUE(static_cast<bool>(matched))
      << llvm::toString(matched.takeError());
  EXPECT_EQ(*matched, c.matches) << c.pattern << " on " << c.text;
}

// PEFT's documented target_modules regexes, and each Python construct whose
// POSIX or PCRE2 reading differs.
INSTANTIATE_TEST_SUITE_P(
    Patterns, PythonFullMatch,
    testing::Values(
        FullMatchCase{R"(^model\.layers\.\d+\.self_attn\.(k_proj|v_proj)$)",
                      "model.layers.12.self_attn.k_proj", true},
        FullMatchCase{R"(^model\.layers\.\d+\.self_attn\.(k_proj|v_proj)$)",
                      "model.layers.d.self_attn.k_proj", false},
        FullMatchCase{R"(^model\.layers\.\d+\.self_attn\.(k_proj|v_proj)$)",
                      "model.layers.3.self_attn.q_proj", false},
        FullMatchCase{R"(.*\.(?:q|v)_proj)", "model.layers.0.self_attn.q_proj",
                      true},
        FullMatchCase{R"(.*\.(?:q|v)_proj)", "model.layers.0.self_attn.o_proj",
                      false},
        FullMatchCase{R"(.*decoder.*(SelfAttention|EncDecAttention).*(q|v)$)",
                      "decoder.block.0.layer.0.SelfAttention.q", true},
        FullMatchCase{R"(.*decoder.*(SelfAttention|EncDecAttention).*(q|v)$)",
                      "encoder.block.0.layer.0.SelfAttention.q", false},
        FullMatchCase{R"(\w+\.layers\.\d\.\w+\.\w_proj)",
                      "model.layers.3.mlp.q_proj", true},
        FullMatchCase{R"(\w+\.layers\.\d\.\w+\.\w_proj)",
                      "model.layers.31.mlp.q_proj", false},
        // A lazy quantifier still has to reach the end under fullmatch.
        FullMatchCase{R"(.*?proj)", "a.q_proj", true},
        FullMatchCase{R"(.*\bq_proj)", "model.q_proj", true},
        FullMatchCase{R"(.*\bq_proj)", "modelq_proj", false},
        // `{,1}` is {0,1} in Python, a literal in PCRE2 10.42.
        FullMatchCase{R"(model\.layers\.[0-9]{,1}\.q)", "model.layers.7.q",
                      true},
        FullMatchCase{R"(model\.layers\.[0-9]{,1}\.q)", "model.layers.17.q",
                      false},
        FullMatchCase{R"(model\.layers\.[0-9]{,1}\.q)", "model.layers..q",
                      true},
        FullMatchCase{R"(a{,}b)", "aaab", true},
        FullMatchCase{R"(a{)", "a{", true},
        FullMatchCase{R"(a{x})", "a{x}", true},
        // No POSIX classes in Python: `[[:alpha:]` is a set, then `]+`.
        FullMatchCase{R"([[:alpha:]]+)", "abc", false},
        FullMatchCase{R"([[:alpha:]]+)", "a]]", true},
        FullMatchCase{R"((?i)Q_PROJ)", "q_proj", true},
        FullMatchCase{R"((?<=\.)q_proj|.*\.q_proj)", "x.q_proj", true},
        FullMatchCase{R"((?P<p>q)_(?P=p))", "q_q", true},
        FullMatchCase{R"((?P<p>q)_(?P=p))", "q_v", false},
        FullMatchCase{R"(q\Z)", "q", true},
        FullMatchCase{R"(\x71_proj)", "q_proj", true},
        FullMatchCase{R"(\161_proj)", "q_proj", true},
        FullMatchCase{R"((a)\1)", "aa", true},
        FullMatchCase{R"((a)\1)", "ab", false},
        FullMatchCase{R"([\d-]+)", "1-2", true},
        FullMatchCase{R"([]a]+)", "]a", true},
        FullMatchCase{R"(\s?q)", " q", true},
        FullMatchCase{R"(q(?#comment)v)", "qv", true},
        FullMatchCase{R"((?s:.))", "\n", true},
        FullMatchCase{R"(\v)", "\x0b", true}));

struct ErrorCase {
  const char *pattern;
  const char *message;
};

class PythonRejects : public testing::TestWithParam<ErrorCase> {};

TEST_P(PythonRejects, WithItsMessage) {
  const ErrorCase &c = GetParam();
  llvm::Expected<PythonRegex> regex = PythonRegex::compile(c.pattern);
  ASSERT_FALSE(static_cast<bool>(regex)) << c.pattern;
  std::string message = llvm::toString(regex.takeError());
  EXPECT_NE(message.find(c.message), std::string::npos)
      << c.pattern << ": " << message;
}

// Python's own errors (wording and position as re.compile says them), and
// the constructs atmoe cannot honour exactly.
INSTANTIATE_TEST_SUITE_P(
    Patterns, PythonRejects,
    testing::Values(
        ErrorCase{R"(a\q)", "bad escape \\q at position 1"},
        ErrorCase{R"((?i)a(?i)b)",
                  "global flags not at the start of the expression at "
                  "position 5"},
        ErrorCase{R"(a{2,1})", "min repeat greater than max repeat at "
                               "position 2"},
        ErrorCase{R"([a)", "unterminated character set at position 0"},
        ErrorCase{R"((*FAIL))", "nothing to repeat at position 1"},
        ErrorCase{R"([\8])", "bad escape \\8 at position 1"},
        ErrorCase{R"((?<n>a))", "unknown extension ?<"},
        ErrorCase{R"(\u12)", "incomplete escape \\u12 at position 0"},
        ErrorCase{R"(\N{DIGIT ONE})", "\\N{...} is not supported"},
        ErrorCase{R"((?x)a b)", "the inline flag x is not supported"},
        ErrorCase{R"(\d()", "missing closing parenthesis"},
        ErrorCase{R"(\8)", "non-existent"}));

TEST(PythonRegex, MatchAtStartGivesTheGroup) {
  // PEFT's layer index rule with no layers_pattern.
  llvm::Expected<PythonRegex> regex =
      PythonRegex::compile(R"(.*\.[^.]*\.(\d+)\.)");
  ASSERT_TRUE(static_cast<bool>(regex));
  llvm::Expected<std::optional<std::string>> layer =
      regex->matchAtStart("model.layers.3.self_attn.q_proj", 1);
  ASSERT_TRUE(static_cast<bool>(layer));
  EXPECT_EQ(layer->value_or("none"), "3");
  llvm::Expected<std::optional<std::string>> none =
      regex->matchAtStart("lm_head", 1);
  ASSERT_TRUE(static_cast<bool>(none));
  EXPECT_FALSE(none->has_value());
}

TEST(PythonRegex, PeftRankPatternExample) {
  // PEFT's documented rank_pattern key, as PEFT wraps it: `^` anchors it to
  // the start of the module name, so no prefix may precede it.
  llvm::Expected<PythonRegex> regex = PythonRegex::compile(
      R"((.*\.)?(^model.decoder.layers.0.encoder_attn.k_proj)$)");
  ASSERT_TRUE(static_cast<bool>(regex));
  for (auto [name, matches] :
       {std::pair("model.decoder.layers.0.encoder_attn.k_proj", true),
        std::pair("base.model.decoder.layers.0.encoder_attn.k_proj", false),
        std::pair("model.decoder.layers.0.encoder_attn.k_proj2", false)}) {
    llvm::Expected<std::optional<std::string>> match =
        regex->matchAtStart(name);
    ASSERT_TRUE(static_cast<bool>(match));
    EXPECT_EQ(match->has_value(), matches) << name;
  }
}

TEST(PythonRegex, TranslationSpellsPythonMeaningsInPcre2) {
  llvm::Expected<std::string> translated =
      translatePythonRegex(R"(\Z{,3}[[\b]\v(?u:x))");
  ASSERT_TRUE(static_cast<bool>(translated));
  EXPECT_EQ(*translated, R"(\z{0,3}[\[\x{8}]\x{b}(?:x))");
}

} // namespace

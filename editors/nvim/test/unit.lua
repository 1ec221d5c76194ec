-- Headless unit checks of the plugin's pure helpers (no server needed):
--   nvim --headless --clean -u NONE --cmd 'set rtp^=editors/nvim' -l? -- use test/unit.sh
local util = require("codetier.util")
local failures = 0

local function eq(got, want, what)
  if not vim.deep_equal(got, want) then
    failures = failures + 1
    io.stderr:write(string.format("FAIL %s\n  got:  %s\n  want: %s\n", what, vim.inspect(got), vim.inspect(want)))
  end
end

local function lines_of(t)
  return function(a, b)
    local out = {}
    for i = a + 1, math.min(b, #t) do
      table.insert(out, t[i])
    end
    return out
  end
end

-- char_index: bytes to UTF-16 / UTF-32 / UTF-8 units.
eq(util.char_index("abc", 2, "utf-16"), 2, "ascii utf-16")
eq(util.char_index("héllo", 3, "utf-16"), 2, "é is 2 bytes, 1 unit")
eq(util.char_index("a😀b", 5, "utf-16"), 3, "emoji is 4 bytes, 2 utf-16 units")
eq(util.char_index("a😀b", 5, "utf-32"), 2, "emoji is 1 utf-32 unit")
eq(util.char_index("a😀b", 5, "utf-8"), 5, "utf-8 counts bytes")
eq(util.char_index("a😀b", 3, "utf-16"), 1, "inside a character stops at its start")
eq(util.char_index("abc", 99, "utf-16"), 3, "past the end clamps")

eq(util.char_len_at("aé", 2), 2, "é length")
eq(util.char_len_at("a😀", 2), 4, "emoji length")
eq(util.char_len_at("a", 5), 0, "past end")

local buf = { "fn main() {", "    let é = 1;", "    x😀y", "}" }
-- Characterwise, inclusive end made exclusive, across multibyte characters.
eq(util.selection_range("v", { 2, 9 }, { 3, 6 }, lines_of(buf), "utf-16"),
  { start = { line = 1, character = 8 }, ["end"] = { line = 2, character = 7 } }, "charwise with emoji")
-- Selection made upwards.
eq(util.selection_range("v", { 3, 6 }, { 2, 9 }, lines_of(buf), "utf-16"),
  { start = { line = 1, character = 8 }, ["end"] = { line = 2, character = 7 } }, "upwards selection")
-- Linewise covers whole lines.
eq(util.selection_range("V", { 3, 4 }, { 1, 1 }, lines_of(buf), "utf-16"),
  { start = { line = 0, character = 0 }, ["end"] = { line = 3, character = 0 } }, "linewise")
-- `$` reports a huge column.
eq(util.selection_range("v", { 1, 1 }, { 1, 2147483647 }, lines_of(buf), "utf-16"),
  { start = { line = 0, character = 0 }, ["end"] = { line = 0, character = 11 } }, "to end of line")
-- Cursor only: an empty range.
eq(util.selection_range("n", { 2, 9 }, { 2, 9 }, lines_of(buf), "utf-16"),
  { start = { line = 1, character = 8 }, ["end"] = { line = 1, character = 8 } }, "cursor")
eq(util.selection_range("n", { 2, 11 }, { 2, 11 }, lines_of(buf), "utf-8"),
  { start = { line = 1, character = 10 }, ["end"] = { line = 1, character = 10 } }, "cursor utf-8")
eq(util.line_range(5, 3), { start = { line = 2, character = 0 }, ["end"] = { line = 5, character = 0 } }, ":3,5 range")

-- Empty tables must encode as JSON objects.
eq(vim.fn.json_encode(util.json_object({})), "{}", "empty settings")
eq((vim.fn.json_encode(util.json_object({ tiers = { flash = {} } })):gsub("%s", "")), '{"tiers":{"flash":{}}}', "nested empty")
eq(vim.fn.json_decode(vim.fn.json_encode(util.json_object({ privacy = { exclude = { "a", "b" } } }))),
  { privacy = { exclude = { "a", "b" } } }, "lists stay lists")

eq(util.command_argument("file:///a.rs", { start = {}, ["end"] = {} }, { tier = "", fresh = false, diagnostics = {} }),
  { uri = "file:///a.rs", range = { start = {}, ["end"] = {} } }, "unset options left out")
eq(util.command_argument("u", "r", { tier = "reasoning", fresh = true, diagnostics = { "x" } }),
  { uri = "u", range = "r", tier = "reasoning", fresh = true, diagnostics = { "x" } }, "all options")

local tiers = vim.tbl_map(function(c) return c.tier end, util.tier_choices("review"))
eq(tiers, { "flash", "coder", "reasoning", "pro" }, "review tiers: default, escalations, rest")
local custom = util.tier_choices("explain", { tiers = { local_ = { model = "qwen", label = "Local" } }, actions = { explain = { tier = "local_", escalate = {} } } })
eq(custom[1], { tier = "local_", label = "Local", model = "qwen" }, "configured tier first")

eq(util.summary({ tier = "flash", tier_label = "Flash", latency_ms = 812, cost_usd = 0.000024 }), "Flash · 812 ms · $0.00002", "summary")
eq(util.summary({ tier = "reasoning", cached = true, cost_usd = 0.5 }), "reasoning · cached", "cached summary")
eq(util.headline("## **Off by one**\nmore"), "Off by one", "headline")
eq({ util.usd(0), util.usd(0.000003), util.usd(0.000024), util.usd(0.0123), util.usd(1.254) },
  { "$0.00", "$0.000003", "$0.00002", "$0.0123", "$1.25" }, "dollars: a tiny cost is not shown as zero")
eq(util.status_text({ last = { tier_label = "Flash", latency_ms = 2500 }, session_cost = 0.0123, cost_known = true }), "codetier: Flash · 2.5 s · session $0.0123", "status")
eq(util.status_text({ session_cost = 0 }), "", "no status before an answer")

-- One message line that fits: the headline is cut, the summary kept.
eq(util.fit_line("short", 20, " [x]"), "short [x]", "fits as is")
eq(util.fit_line("first line\nsecond", 40), "first line", "only the first line")
eq(util.fit_line("codetier: a very long headline about the bug", 30, " [Flash]"), "codetier: a very long… [Flash]", "cut before the suffix")
eq(vim.fn.strdisplaywidth(util.fit_line(string.rep("é", 50), 20, " [$0.01]")), 20, "multibyte cut to the width")
eq(util.fit_line("abcdef", 3, " [a long suffix]"), "ab…", "no room for the suffix")

local report = {
  per_tier = {
    { tier = "flash", requests = 2, cache_hits = 1, input_tokens = 688, output_tokens = 10, cost_usd = 0.000003 },
    { tier = "reasoning", requests = 1, cache_hits = 0, input_tokens = 304, output_tokens = 1000 },
  },
  total_cost_usd = 0.000003,
}
local lines = util.usage_lines(report)
eq(lines[1], "codetier usage this session", "usage title")
eq(lines[3], "tier       requests  cached  tokens in  tokens out       cost  saved", "usage header")
eq(lines[4], "flash             2       1        688          10  $0.000003    n/a", "usage row")
eq(lines[5], "reasoning         1       0        304        1000        n/a    n/a", "unknown cost")
eq(lines[6], "total             3       1        992        1010  $0.000003    n/a", "usage total")
eq(util.usage_lines({ per_tier = {} })[3], "No requests yet.", "empty usage")
eq(util.usage_summary(report), "usage: 3 requests, 1 cached, 992 tokens in / 1010 out, $0.000003", "usage summary")

if failures > 0 then
  io.stderr:write(string.format("unit.lua: %d failure(s)\n", failures))
  vim.cmd("cquit 1")
else
  io.stdout:write("unit.lua: all checks passed\n")
  vim.cmd("qall!")
end

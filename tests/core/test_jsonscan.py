"""The compiled JSON-lines scan equals its plain-Python reference, and ``decode_jsonl`` with the scan
returns exactly what the msgspec path alone returns, whatever the lines."""
from __future__ import annotations

import doctest
import struct
import typing

import msgspec
import numpy as np
import polars as pl
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from brain import ingest
from brain.ingest import KIND_DTYPES, SCAN_SPEC, SENSOR_POSITION, decode_jsonl
from brain.kernels import jsonscan, jsonscan_reference, jsonscan_spec, newlines
from brain.kernels.jsonscan import line_bounds, line_bounds_reference, make_spec, scan
from brain.kernels.jsonscan_reference import scan_reference
from brain.schemas import KINDS, RECORD_TYPES

# --- lines: valid records of every kind, and every way a line can differ from the strict grammar ----
_WS = st.sampled_from(["", "", "", " ", "\t", "\r", "  "])
_INT_EDGES = [0, -1, 10**18 - 1, 10**18, -(10**18), 2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 10**19 - 1, 2**64]
_NUMBER_TEXT = st.one_of(
    st.sampled_from(_INT_EDGES).map(str),
    st.integers(-(10**6), 10**6).map(str),
    st.integers(-(10**7), 10**7).map(lambda i: repr(i / 100)),  # what the simulator writes: 56.5, 0.56, 2.0
    st.floats(allow_nan=False, allow_infinity=False).map(lambda x: msgspec.json.encode(x).decode()),
    st.integers(-(2**70), 2**70).map(str),
    st.builds(lambda m, e, mark: f"{m}{mark}{e}", st.integers(-(10**17), 10**17), st.integers(-330, 330),
              st.sampled_from(["e", "E", "e+", "E-", "e-"])),
    st.builds(lambda w, f: f"{w}.{f}", st.integers(-(10**9), 10**9), st.text("0123456789", min_size=1, max_size=20)),
    st.sampled_from([
        "-0", "-0.0", "0", "0.0", "-0e3", "0e999", "1e22", "1e23", "1e-22", "1e-23", "9007199254740992",
        "9007199254740993", "9007199254740992.0", "900719925474099.3", "123456789012345678", "1234567890123456789",
        "-999999999999999999", "9223372036854775807", "9223372036854775808", "01", "1.", ".5", "-", "1e", "1e+",
        "2e0003", "2e00003", "1E2", "--1", "+1", "0x10", "1.5e308", "4.9e-324", "NaN", "Infinity", "1_000",
        "1:", "12;3", "3<4", "5=", "6>", "7?", "8/", "9 9", "1.2:", "0.5?", "123456789:", "1.23456789;",
    ]),
)
_TEXT = st.one_of(
    st.sampled_from(["L1", "LP-JF-04E", "NS-22", "HZ2-3", "", "reported", "power", "a b", "x\x7fy"]),
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=8),
    st.text(max_size=6),  # escapes, control characters, non-ASCII: msgspec.json.encode escapes as needed
)
_VALUE_TEXT = st.one_of(
    _NUMBER_TEXT,
    _TEXT.map(lambda s: msgspec.json.encode(s).decode()),
    st.sampled_from(["null", "true", "false", "[]", "{}", '"\\u004c1"', '"\u00e9"', "nul", "nulll", '"open']),
)


def _good_value(kind: str, field: str):
    """A strategy for a value msgspec accepts for this field."""
    info = {f.name: f for f in msgspec.structs.fields(RECORD_TYPES[kind])}[field]
    annotation = str(info.type)
    if field == "sensor_id":
        return st.sampled_from(["L1", "L2", "LP-JF-04E", "A1", "NS-22", "sensor with space"])
    if "Literal" in annotation:
        return st.sampled_from(typing.get_args(info.type))
    if info.type is int:
        return st.one_of(st.integers(0, 2**62), st.integers(), st.sampled_from(_INT_EDGES))
    if info.type is str or "str" in annotation:
        return _TEXT
    floats = st.one_of(
        st.integers(-(10**7), 10**7).map(lambda i: i / 100),
        st.floats(allow_nan=False, allow_infinity=False),
        st.integers(-1000, 1000),
    )
    return st.one_of(floats, st.none()) if "None" in annotation else floats


@st.composite
def record_line(draw) -> bytes:
    """A line built member by member: mostly a valid record, sometimes mutated in one or more ways."""
    kind = draw(st.sampled_from(KINDS))
    members = []
    for field in KIND_DTYPES[kind]:
        info = {f.name: f for f in msgspec.structs.fields(RECORD_TYPES[kind])}[field]
        if not info.required and draw(st.integers(0, 3)) == 0:
            continue  # optional fields are left out now and then
        members.append((field, msgspec.json.encode(draw(_good_value(kind, field))).decode()))
    mutations = draw(st.lists(st.sampled_from(
        ["none", "none", "none", "none", "shuffle", "drop", "duplicate", "extra", "value", "key_escape", "kind_late",
         "truncate", "ws", "unknown_kind", "crlf", "trailing", "rename", "rename"]), max_size=3))
    kind_text = msgspec.json.encode(kind).decode()
    if "unknown_kind" in mutations:
        kind_text = draw(st.sampled_from(['"teleport"', '"Traffic"', '"traffic "', "1", "null", '"\\u0074raffic"']))
    if "shuffle" in mutations:
        members = draw(st.permutations(members))
    if "drop" in mutations and members:
        members.pop(draw(st.integers(0, len(members) - 1)))
    if "duplicate" in mutations and members:
        members.insert(draw(st.integers(0, len(members))), members[draw(st.integers(0, len(members) - 1))])
    if "extra" in mutations:
        key = draw(st.sampled_from(["x", "kind", "sensor_idx", "", "Sensor_id", "ts"]))
        members.insert(draw(st.integers(0, len(members))), (key, draw(_VALUE_TEXT)))
    if "value" in mutations and members:
        i = draw(st.integers(0, len(members) - 1))
        members[i] = (members[i][0], draw(_VALUE_TEXT))
    if "rename" in mutations and members:  # a near-miss key: one character changed, added or removed
        i = draw(st.integers(0, len(members) - 1))
        key = members[i][0]
        at = draw(st.integers(0, len(key)))
        char = draw(st.sampled_from(["x", "S", "_", "d", ""]))
        key = key[:at] + char + key[at + draw(st.integers(0, 1)):]
        members[i] = (key, members[i][1])
    if "key_escape" in mutations and members:
        i = draw(st.integers(0, len(members) - 1))
        key = members[i][0]
        members[i] = ("\\u00" + format(ord(key[0]), "02x") + key[1:] if key else key, members[i][1])
    pairs = [("kind", kind_text)] + members
    if "kind_late" in mutations and members:
        pairs = members[:1] + [("kind", kind_text)] + members[1:]
    ws = (lambda: draw(_WS)) if "ws" in mutations else (lambda: "")
    body = ("," + ws()).join(f'{ws()}"{k}"{ws()}:{ws()}{v}{ws()}' for k, v in pairs)
    line = (ws() + "{" + body + "}" + ws()).encode()
    if "crlf" in mutations:
        line += b"\r"
    if "trailing" in mutations:
        line += draw(st.sampled_from([b" x", b"}", b",", b" {}", b"\x00"]))
    if "truncate" in mutations:
        line = line[: draw(st.integers(0, max(len(line) - 1, 0)))]
    return line


_LINE = st.one_of(
    record_line(),
    record_line(),
    record_line(),
    st.binary(max_size=30).filter(lambda b: b"\n" not in b),
    st.sampled_from([b"", b"  ", b"\t", b"\x0c", b"[1, 2]", b"null", b"{}", b'{"kind":"traffic"}', b"1 2"]),
)


def _buffer(lines: list[bytes], tail: bytes) -> bytes:
    return b"\n".join(lines) + tail


# --- the kernel against its reference --------------------------------------------------------------
def assert_scans_equal(got: jsonscan.ScanResult, want: jsonscan.ScanResult, spec: jsonscan.ScanSpec) -> None:
    np.testing.assert_array_equal(got.status, want.status)
    np.testing.assert_array_equal(got.counts, want.counts)
    np.testing.assert_array_equal(got.offsets, want.offsets)
    np.testing.assert_array_equal(got.id_start, want.id_start)
    np.testing.assert_array_equal(got.id_len, want.id_len)
    for k in range(len(spec.kinds)):
        rows = slice(int(got.offsets[k]), int(got.offsets[k] + got.counts[k]))
        np.testing.assert_array_equal(got.row_line[rows], want.row_line[rows])
        for j, (_, type_name, _, _) in enumerate(spec.fields[k]):
            slot = spec.field_slot[spec.kind_field_off[k] + j]
            if type_name == "float":  # bit for bit (NaN = null, and -0.0 is not 0.0)
                bits = got.fcols[slot, rows].view(np.int64), want.fcols[slot, rows].view(np.int64)
                np.testing.assert_array_equal(*bits)
            else:
                np.testing.assert_array_equal(got.icols[slot, rows], want.icols[slot, rows])


@settings(max_examples=150, deadline=None)
@given(st.lists(_LINE, max_size=25), st.sampled_from([b"", b"\n", b"\n\n"]))
def test_kernel_equals_reference(lines, tail):
    buf = _buffer(lines, tail)
    data = np.frombuffer(buf, np.uint8)
    starts, ends = line_bounds(data)
    assert_scans_equal(scan(data, starts, ends, SCAN_SPEC), scan_reference(buf, starts, ends, SCAN_SPEC), SCAN_SPEC)


@settings(max_examples=100, deadline=None)
@given(st.lists(record_line(), min_size=1, max_size=15), st.data())
def test_kernel_reads_nothing_past_a_line_end(lines, data):
    """Lines given as ranges that stop mid-buffer (before a digit, a quote...) end exactly there."""
    buf = b"\n".join(lines)
    arr = np.frombuffer(buf, np.uint8)
    starts, ends = line_bounds(arr)
    cut = np.array([data.draw(st.integers(0, int(e - s))) for s, e in zip(starts, ends)], np.int64)
    ends = starts + cut
    assert_scans_equal(scan(arr, starts, ends, SCAN_SPEC), scan_reference(buf, starts, ends, SCAN_SPEC), SCAN_SPEC)


@settings(max_examples=300, deadline=None)
@given(st.one_of(_NUMBER_TEXT, st.text("0123456789.eE+-:;<=>?/ n", max_size=25)), st.sampled_from(["value", "ts_ms"]))
def test_kernel_number_grammar_equals_reference(text, field):
    """Any run of number-ish characters as a float (hazard.value) or int (hazard.ts_ms) value."""
    rec = {"value": "1.5", "ts_ms": "7", field: text}
    buf = b'{"kind":"hazard","sensor_id":"H","ts_ms":%s,"value":%s}' % (rec["ts_ms"].encode(), rec["value"].encode())
    buf = buf + b"\n" + buf.replace(b"}", b" }")  # followed by the end of the line, and by a space
    arr = np.frombuffer(buf, np.uint8)
    starts, ends = line_bounds(arr)
    assert_scans_equal(scan(arr, starts, ends, SCAN_SPEC), scan_reference(buf, starts, ends, SCAN_SPEC), SCAN_SPEC)


_TOY = make_spec({
    "a": [("s", "str", False, None), ("t", "str", False, None), ("n", "int", False, -7), ("x", "float", True, 2.5)],
    "bb": [("x", "float", False, None), ("s", "str", False, None)],
})


@st.composite
def toy_line(draw) -> bytes:
    kind = draw(st.sampled_from(["a", "bb", "c", "b"]))
    keys = draw(st.lists(st.sampled_from(["s", "t", "n", "x", "y"]), max_size=5))
    ws = draw(_WS)
    members = "".join(f',{ws}"{k}"{ws}:{ws}{draw(_VALUE_TEXT)}' for k in keys)
    return f'{ws}{{{ws}"kind"{ws}:{ws}"{kind}"{members}{ws}}}{ws}'.encode()


@settings(max_examples=200, deadline=None)
@given(st.lists(toy_line(), max_size=20))
def test_kernel_equals_reference_on_any_spec(lines):
    """Two str fields per kind (shared interning), int defaults, optional floats with a default."""
    buf = _buffer(lines, b"\n")
    data = np.frombuffer(buf, np.uint8)
    starts, ends = line_bounds(data)
    assert_scans_equal(scan(data, starts, ends, _TOY), scan_reference(buf, starts, ends, _TOY), _TOY)


def _decimal_literal(digits: int, point: int, exp: int | None, neg: bool) -> str:
    text = str(digits).rjust(point + 1, "0")
    if point:
        text = text[:-point] + "." + text[-point:]
    return ("-" if neg else "") + text + ("" if exp is None else f"e{exp}")


@settings(max_examples=400, deadline=None)
@given(st.integers(0, 2**53), st.integers(0, 25), st.one_of(st.none(), st.integers(-30, 30)), st.booleans())
@example(2**53, 0, None, False)
@example(2**53, 22, None, False)
@example(1, 0, 22, False)
@example(7, 22, None, False)
@example(4503599627370497, 5, 10, True)
def test_floats_are_the_correctly_rounded_ones(digits, point, exp, neg):
    """Whatever the scan accepts as a float is bit-identical to msgspec's value and Python's float()."""
    literal = _decimal_literal(digits, point, exp, neg)
    buf = b'{"kind":"hazard","sensor_id":"H","ts_ms":1,"value":%s}' % literal.encode()
    data = np.frombuffer(buf, np.uint8)
    out = scan(data, *line_bounds(data), SCAN_SPEC)
    k = SCAN_SPEC.kinds.index("hazard")
    if out.status[0] != k:
        return
    got = out.fcols[0, out.offsets[k]]
    want = msgspec.json.decode(literal.encode(), type=float)
    assert struct.pack("<d", got) == struct.pack("<d", want) == struct.pack("<d", float(literal))


def test_the_lines_a_feed_writes_take_the_fast_path():
    """Without this the equality tests below could pass with a scan that accepts nothing."""
    rng = np.random.default_rng(3)
    lines = []
    for kind, fields in zip(SCAN_SPEC.kinds, SCAN_SPEC.fields):
        for _ in range(20):
            rec = {"kind": kind}
            for name, type_name, optional, _ in fields:
                if type_name == "str":
                    rec[name] = f"S-{int(rng.integers(50))}"
                elif type_name == "int":
                    rec[name] = int(rng.integers(0, 2**45))
                elif optional and rng.random() < 0.2:
                    rec[name] = None
                else:
                    rec[name] = round(float(rng.uniform(-1e4, 1e4)), int(rng.integers(0, 4)))
            lines.append(msgspec.json.encode(rec))
    buf = b"\n".join(lines)
    data = np.frombuffer(buf, np.uint8)
    out = scan(data, *line_bounds(data), SCAN_SPEC)
    assert (out.status >= 0).all()
    assert len(SCAN_SPEC.kinds) >= 8  # every numeric kind of brain.schemas: traffic, probe, air, noise, ...
    frames, dead = decode_jsonl(buf)
    assert dead.height == 0 and sum(f.height for f in frames.values()) == len(lines)


# --- decode_jsonl with the scan == the msgspec path alone -----------------------------------------
def assert_same_decode(a, b) -> None:
    frames_a, dead_a = a
    frames_b, dead_b = b
    assert list(frames_a) == list(frames_b)  # same kinds, in the same order
    for kind in frames_a:
        fa, fb = frames_a[kind], frames_b[kind]
        assert fa.schema == fb.schema
        assert fa.height == fb.height
        for name in fa.columns:
            sa, sb = fa[name], fb[name]
            assert sa.is_null().to_list() == sb.is_null().to_list(), (kind, name)
            if sa.dtype == pl.Float64:  # bit for bit
                va = sa.fill_null(0.0).to_numpy().view(np.int64)
                vb = sb.fill_null(0.0).to_numpy().view(np.int64)
                np.testing.assert_array_equal(va, vb, err_msg=f"{kind}.{name}")
            else:
                assert sa.to_list() == sb.to_list(), (kind, name)
    assert dead_a.schema == dead_b.schema
    assert dead_a.rows() == dead_b.rows()


@settings(max_examples=200, deadline=None)
@given(st.lists(_LINE, max_size=40), st.sampled_from([b"", b"\n"]), st.integers(1, 40))
def test_fast_path_equals_msgspec_path(lines, tail, chunk):
    buf = _buffer(lines, tail)
    assert_same_decode(decode_jsonl(buf), decode_jsonl(buf, fast=False))


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(SCAN_SPEC.kinds), st.data(), _VALUE_TEXT)
def test_any_value_in_any_field_of_a_numeric_record(kind, data, text):
    """One member's value replaced by any JSON-ish text: the number grammar, null, strings, edges."""
    fields = KIND_DTYPES[kind]
    rec = {"kind": kind, **{f: data.draw(_good_value(kind, f)) for f in fields}}
    target = data.draw(st.sampled_from(list(fields)))
    line = msgspec.json.encode(rec).replace(b'"%s":%s' % (target.encode(), msgspec.json.encode(rec[target])),
                                            b'"%s":%s' % (target.encode(), text.encode()))
    buf = b"\n".join([line, msgspec.json.encode(rec)])
    assert_same_decode(decode_jsonl(buf), decode_jsonl(buf, fast=False))


@settings(max_examples=100, deadline=None)
@given(st.lists(record_line(), min_size=1, max_size=60), st.integers(1, 40))
def test_fast_path_equals_msgspec_path_on_record_lines(lines, chunk):
    buf = b"\n".join(lines) + b"\n"
    assert_same_decode(decode_jsonl(buf), decode_jsonl(buf, fast=False))


def test_rows_of_one_kind_from_both_paths_keep_line_order():
    fast = b'{"kind":"hazard","sensor_id":"H%d","ts_ms":%d,"value":1.5}'
    slow = b'{"kind":"hazard","ts_ms":%d,"sensor_id":"H%d","value":1.5,"extra":[1]}'  # unknown key: msgspec
    wide = b'{"kind":"hazard","sensor_id":"W","ts_ms":%d,"value":2}' % (2**64)
    lines = [fast % (0, 0), slow % (1, 1), wide, fast % (3, 3), b"{", slow % (5, 5), fast % (6, 6)]
    buf = b"\n".join(lines)
    scan_out = scan(np.frombuffer(buf, np.uint8), *line_bounds(np.frombuffer(buf, np.uint8)), SCAN_SPEC)
    assert scan_out.status.tolist().count(SCAN_SPEC.kinds.index("hazard")) == 3  # both paths really contribute
    frames, dead = decode_jsonl(buf)
    assert frames["hazard"]["ts_ms"].to_list() == [0, 1, 3, 5, 6]
    assert frames["hazard"]["sensor_id"].to_list() == ["H0", "H1", "H3", "H5", "H6"]
    assert dead["reason_code"].to_list() == ["malformed", "wrong_type"]
    assert_same_decode((frames, dead), decode_jsonl(buf, fast=False))


def test_a_line_with_two_records_is_one_dead_letter_whatever_the_grouping():
    """decode_lines reads a stream of values; one line must still be one record or one dead letter."""
    good = b'{"kind":"hazard","sensor_id":"H","ts_ms":1,"value":1.5}'
    buf = b"\n".join([good, good + b" " + good, good])
    for fast in (True, False):
        frames, dead = decode_jsonl(buf, fast=fast)
        assert frames["hazard"].height == 2
        assert dead["reason_code"].to_list() == ["malformed"]


def test_sensor_ids_survive_interning():
    ids = [f"S{i % 37}-{'x' * (i % 5)}" for i in range(500)]
    buf = b"\n".join(
        msgspec.json.encode({"kind": "noise", "sensor_id": s, "ts_ms": i, "laeq_db": 50.5}) for i, s in enumerate(ids)
    )
    frames, _ = decode_jsonl(buf)
    assert frames["noise"]["sensor_id"].to_list() == ids


# --- the spec, the warm-up, the example -----------------------------------------------------------
@pytest.mark.parametrize(
    "kinds, message",
    [
        ({}, "at least one kind"),
        ({"k": []}, "1 to 62 fields"),
        ({"k": [("a", "str", False, None), ("a", "int", False, None)]}, "unique"),
        ({"k": [("kind", "str", False, None)]}, "unique and not 'kind'"),
        ({"k": [("a", "bool", False, None)]}, "type must be str, int or float"),
        ({"k": [("a", "int", True, None)]}, "only float fields may be optional"),
        ({"k": [("a", "str", False, "x")]}, "str fields cannot have a default"),
        ({"k": [("a", "int", False, 1.5)]}, "not a valid int"),
        ({"k": [("a", "int", False, 2**63)]}, "not a valid int"),
        ({"k": [("a", "float", False, True)]}, "not a valid float"),
        ({'k"': [("a", "int", False, None)]}, "printable ASCII"),
        ({"k": [("é", "int", False, None)]}, "printable ASCII"),
    ],
)
def test_bad_specs_are_refused_clearly(kinds, message):
    with pytest.raises(ValueError, match=message):
        make_spec(kinds)


def test_spec_covers_exactly_the_numeric_kinds():
    numeric = []
    for kind, t in RECORD_TYPES.items():
        types = {str(f.type) for f in msgspec.structs.fields(t) if f.name != "sensor_id"}
        if types <= {"<class 'int'>", "<class 'float'>", "float | None"}:
            numeric.append(kind)
    assert list(SCAN_SPEC.kinds) == numeric
    assert "traffic" in numeric and "grid_case" not in numeric


def test_warm_up_and_examples():
    jsonscan.warm_up()
    for module in (jsonscan, jsonscan_reference, jsonscan_spec, newlines):
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert result.failed == 0 and result.attempted > 0, module.__name__
    assert ingest.__doc__ is not None and "fast=False" in ingest.__doc__


@settings(max_examples=100, deadline=None)
@given(st.lists(_LINE, max_size=40), st.integers(1, 40), st.data())
def test_sensor_positions_are_the_index_of_each_rows_id(lines, chunk, data):
    """With a sensor index, every frame's position column is the index of its row's id (or -1),
    from both paths alike; the record columns are unchanged."""
    buf = _buffer(lines, b"\n")
    plain = decode_jsonl(buf)
    some_ids = sorted({i for f in plain[0].values() for i in f["sensor_id"].to_list()})
    known = data.draw(st.lists(st.sampled_from(some_ids), unique=True) if some_ids else st.just([]))
    index = {sid: 10 * k + 3 for k, sid in enumerate(known)}
    for fast in (True, False):
        frames, dead = decode_jsonl(buf, fast=fast, sensor_index=index)
        assert_same_decode(({k: f.drop(SENSOR_POSITION) for k, f in frames.items()}, dead), plain)
        for frame in frames.values():
            assert frame[SENSOR_POSITION].to_list() == [index.get(i, -1) for i in frame["sensor_id"].to_list()]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from([10, 10, 11, 0, 9, 138, 255, 1, 123, 34]), max_size=80), st.booleans())
@example([], False)
@example([10] * 17, False)
@example([11, 10, 11] * 5, True)
def test_line_bounds_match_numpy(raw, writable):
    """The compiled newline pass finds the lines numpy finds: every byte value next to a newline
    (0x0B and 0x8A differ from it by one bit), words cut short at the end, empty lines, a last
    line without a newline, read-only or writable buffers."""
    buf = np.array(raw, dtype=np.uint8) if writable else np.frombuffer(bytes(raw), np.uint8)
    got, want = line_bounds(buf), line_bounds_reference(buf)
    assert got[0].tolist() == want[0].tolist() and got[1].tolist() == want[1].tolist()
    assert got[0].dtype == got[1].dtype == np.int64


def test_line_bounds_grow_past_their_first_guess():
    """More lines than the first allocation holds (one per 64 bytes, plus 1,024)."""
    buf = np.frombuffer(b"\n" * 5000 + b"x", np.uint8)
    starts, ends = line_bounds(buf)
    assert len(ends) == 5001 and ends[-1] == 5001 and starts[-1] == 5000

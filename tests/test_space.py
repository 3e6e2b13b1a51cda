"""The search space against the Blox reference values, plus parsing, naming and selectors."""

from __future__ import annotations

import json

import pytest

from blox_lat import space as sp
from blox_lat.errors import InvalidArchError, SelectorError, UnknownModelError
from blox_lat.space._table import enumerate_raw

EXAMPLE = "[[[0],[1,1,1,1]], [[1],[1,1,0,0]], [[0],[0,1,1,0]]]"


def test_counts_match_reference(reference):
    info = sp.space_info()
    counts = reference["counts"]
    assert info["raw_arch_vectors"] == counts["raw_arch_vectors"] == 373_248
    assert info["invalid_raw_vectors"] == counts["invalid_raw_vectors"] == 123_201
    assert info["unique_models"] == counts["unique_models"] == 91_125
    assert info["unique_blocks_per_stage"] == counts["unique_blocks_per_stage"] == 45
    assert len(sp.list_blocks()) == 45


def test_spec_test_vector():
    assert sp.resolve(EXAMPLE).hash == "c3bc16e69893c8ea08f1e89e61f4caa5"
    assert sp.reference_hash(sp.parse_vector(EXAMPLE)) == "c3bc16e69893c8ea08f1e89e61f4caa5"


def test_every_reference_model_resolves_three_ways(reference):
    for model in reference["models"]:
        by_vec = sp.resolve(model["arch_vec"])
        by_hash = sp.resolve(model["hash"])
        by_index = sp.resolve(model["index"])
        assert by_vec == by_hash == by_index
        assert (by_vec.index, by_vec.hash) == (model["index"], model["hash"])
        # the reference stores the first vector that produces the hash: our canonical vector
        assert by_index.vector_list == model["arch_vec"]
        assert sp.reference_hash(sp.parse_vector(model["arch_vec"])) == model["hash"]
    indices = {m["index"] for m in reference["models"]}
    assert set(range(12)) | {91_124} <= indices


def test_parameter_counts_match_reference(reference):
    for entry in reference["params"]:
        assert sp.params(entry["arch_vec"]) == entry["params"], entry["hash"]
    for entry in reference["params"][:25]:  # the built torch model agrees with the analytic count
        assert sp.count_params(sp.build_model(entry["hash"])) == entry["params"]


def test_macs_match_forward_hooks():
    torch = pytest.importorskip("torch")
    archs = sp.select("0:3,random:6:3," + EXAMPLE)
    for arch in archs:
        model = sp.build_model(arch).eval()
        counted = []

        def hook(module, inputs, output, counted=counted):
            if isinstance(module, torch.nn.Conv2d):
                k = module.kernel_size[0] * module.kernel_size[1]
                counted.append(output.numel() * (module.in_channels // module.groups) * k)
            elif isinstance(module, torch.nn.Linear):
                counted.append(module.in_features * module.out_features)

        handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
        with torch.no_grad():
            model(torch.zeros(1, 3, 32, 32))
        for h in handles:
            h.remove()
        assert sum(counted) == sp.macs(arch)
        assert sp.flops(arch) == 2 * sp.macs(arch)


def test_model_is_traceable_and_scriptable():
    torch = pytest.importorskip("torch")
    x = torch.randn(2, 3, 32, 32)
    for name in ["0", EXAMPLE, "par.bconv.mbconv/res.conv.bconv/mbconv"]:
        model = sp.build_model(name).eval()
        with torch.no_grad():
            ref = model(x)
            assert ref.shape == (2, 100)
            assert torch.allclose(torch.jit.script(model)(x), ref, atol=1e-5)
            assert torch.allclose(torch.jit.trace(model, x)(x), ref, atol=1e-5)


def test_dead_operations_are_not_instantiated():
    # "input only" leaves op0 dead and "skip only" leaves op1 dead: one live op either way
    for vector in ("[[[2],[0,0,1,0]],[[0],[0,1,0,0]],[[0],[0,1,0,0]]]", "[[[0],[2,0,0,1]],[[0],[0,1,0,0]],[[0],[0,1,0,0]]]"):
        cell = sp.build_model(vector).stages[0][0]
        live = [op for op in (cell.op0, cell.op1) if op is not None]
        assert len(live) == 1
    both = sp.build_model("[[[2],[0,1,1,1]],[[0],[0,1,0,0]],[[0],[0,1,0,0]]]").stages[0][0]
    assert both.op0 is not None and both.op1 is not None


@pytest.mark.parametrize(
    "bad, fragment",
    [
        ("[[[0],[1,1,1,1]]]", "3 stages"),
        ("[[[0],[1,1,1]],[[0],[1,1,1,1]],[[0],[1,1,1,1]]]", "stage 0 must look like"),
        ("[[[3],[1,1,1,1]],[[0],[1,1,1,1]],[[0],[1,1,1,1]]]", "stage 0 op0 must be 0, 1 or 2"),
        ("[[[0],[1,1,1,1]],[[0],[1,2,1,1]],[[0],[1,1,1,1]]]", "stage 1 prev must be 0 or 1"),
        ("[[[0],[1,1,1,1]],[[0],[1,1,1,1]],[[0],[1,0,0,0]]]", "stage 2 is invalid"),
        ("[[[0],[1,1,1,1]", "not valid JSON"),
        ("[[[true],[1,1,1,1]],[[0],[1,1,1,1]],[[0],[1,1,1,1]]]", "op0 must be"),
    ],
)
def test_bad_vectors_raise_typed_errors(bad, fragment):
    with pytest.raises(InvalidArchError) as info:
        sp.resolve(bad)
    assert fragment in str(info.value)


@pytest.mark.parametrize("bad", ["91125", "-1", "0" * 31 + "g", "ffffffffffffffffffffffffffffffff", "conv/conv", "x/y/z", "hello"])
def test_bad_names_raise_typed_errors(bad):
    with pytest.raises(UnknownModelError):
        sp.resolve(bad)


def test_canonical_form_and_raw_vectors_of_one_model():
    # single-op blocks arise from "input only" and from "skip only": one model, one canonical vector
    a = sp.resolve("[[[1],[0,0,0,1]],[[0],[0,1,0,0]],[[0],[0,1,0,0]]]")
    b = sp.resolve("[[[2],[1,0,1,0]],[[0],[0,1,0,0]],[[0],[0,1,0,0]]]")
    assert a == b and a.block_names[0] == "mbconv"
    assert a.vector_list[0] == [[0], [1, 0, 1, 0]]
    assert sp.format_vector(a.vector) == a.vector_text and " " not in a.vector_text
    assert sp.resolve(a.vector_text) == a


def test_block_names_round_trip():
    names = [b.name for b in sp.list_blocks()]
    assert len(set(names)) == 45
    for block in sp.list_blocks():
        assert sp.get_block(block.name) == block == sp.get_block(block.id)
        assert "," not in block.name and ":" not in block.name
    assert sp.get_block("par.mbconv.conv") == sp.get_block("par.conv.mbconv")
    for arch in sp.sample(200, seed=7):
        assert sp.resolve(arch.name) == arch


def test_random_sampling_is_seeded():
    assert [a.index for a in sp.sample(20, 1)] == [a.index for a in sp.sample(20, 1)]
    assert [a.index for a in sp.sample(20, 1)] != [a.index for a in sp.sample(20, 2)]
    assert len({a.index for a in sp.sample(500, 0)}) == 500


def test_selectors(tmp_path):
    assert len(sp.select("all")) == 91_125
    assert [a.index for a in sp.select("5:8")] == [5, 6, 7]
    assert [a.index for a in sp.select(":3")] == [0, 1, 2]
    assert [a.index for a in sp.select("91123:")] == [91123, 91124]
    first = sp.resolve(0)
    picked = sp.select(f"3,{first.hash},0,{EXAMPLE},random:3:9")
    assert [a.index for a in picked][:3] == [3, 0, 24519]  # duplicates dropped, order kept
    assert len(picked) == 3 + len({a.index for a in sp.sample(3, 9)} - {0, 3, 24519})
    listing = tmp_path / "models.txt"
    listing.write_text(f"# my models\n7\n{first.hash}  # a comment\n\n0:2\n")
    assert [a.index for a in sp.select(f"@{listing}")] == [7, 0, 1]


@pytest.mark.parametrize("bad", ["", "5:3", "0:99999", "random:x", "random:91126", "@/nonexistent/file", "zzz"])
def test_bad_selectors(bad):
    with pytest.raises((SelectorError, UnknownModelError)):
        sp.select(bad)


def test_shards_partition_a_selection():
    archs = sp.select("random:100:4")
    parts = [sp.shard(archs, f"{k}/3") for k in (1, 2, 3)]
    assert sorted(a.index for p in parts for a in p) == sorted(a.index for a in archs)
    assert all(parts)
    for bad in ["0/3", "4/3", "1/0", "x"]:
        with pytest.raises(SelectorError):
            sp.shard(archs, bad)


def test_enumeration_order_is_the_odometer():
    raw = enumerate_raw()
    # digit 0 (stage 0 op0) varies fastest: positions 0,1,2 differ only in stage 0's op0
    assert raw.codes[:3].tolist() == [[0, 0, 0], [1, 0, 0], [2, 0, 0]]
    assert raw.codes[72].tolist() == [0, 1, 0]
    assert int((raw.triples < 0).sum()) == 123_201
    assert json.loads(sp.resolve(0).vector_text) == [[[0], [0, 1, 0, 0]]] * 3


def test_num_models_constant_matches_the_enumerated_space():
    assert sp.NUM_MODELS == sp.space_table().num_models == 91_125

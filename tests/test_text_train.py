"""Training, checkpoints, resume, tokenizers and the `yolo-lat text` command line, at tiny sizes."""

import math
import shutil
import sys
import types

import pytest
import torch

from yolo_lat.args import ArgumentError
from yolo_lat.text import ByteTokenizer, load_tokenizer
from yolo_lat.text import cli as text_cli
from yolo_lat.text.checkpoint import load_model, save_checkpoint
from yolo_lat.text.tokenizer import HuggingFaceTokenizer
from yolo_lat.text.train import default_corpus, train

TINY = dict(d_model=32, n_layers=1, n_heads=4, block=32, batch=4, val_batches=1, progress=False)


def test_default_corpus_is_embedded_text():
    text = default_corpus()
    assert 10_000 < len(text.encode()) < 200_000
    assert "lamplighter" in text


@pytest.mark.slow
def test_training_lowers_the_loss_and_writes_checkpoints(tmp_path):
    summary = train(project=str(tmp_path), steps=30, val_every=15, lr=1e-2, **TINY)
    assert summary["run"] == str(tmp_path / "train")
    assert [h["step"] for h in summary["history"]] == [15, 30]
    # an untrained byte model scores ln(256) = 5.55; measured after 30 steps: 2.95..3.01 (seeds 0-2)
    assert summary["val_loss"] < 4.0
    model, tokenizer, record = load_model(summary["last"])
    assert record["step"] == 30 and tokenizer.name == "byte"
    assert model.config.memory_lobe and model.config.moe_experts == 4  # the default model has both
    assert (tmp_path / "train" / "best.pt").is_file()
    assert not list(tmp_path.rglob("*.tmp"))
    # a second run gets its own folder
    assert train(project=str(tmp_path), steps=1, val_every=1, **TINY)["run"] == str(tmp_path / "train2")


def test_resume_continues_exactly_where_it_stopped(tmp_path):
    settings = dict(TINY, steps=8, val_every=4, schedule="constant", warmup=0, moe_experts=2, moe_top_k=1)
    straight = train(project=str(tmp_path), name="straight", **settings)
    train(project=str(tmp_path), name="split", **{**settings, "steps": 5})
    resumed = train(project=str(tmp_path), name="split", resume=True, **settings)
    assert resumed["step"] == 8
    a, _, _ = load_model(straight["last"])
    b, _, _ = load_model(resumed["last"])
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(pa, pb), name
    # resume without a name picks the latest run
    again = train(project=str(tmp_path), resume=True, **{**settings, "steps": 9})
    assert again["run"] == str(tmp_path / "split") and again["step"] == 9


def test_resume_without_a_run_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"last\.pt"):
        train(project=str(tmp_path), resume=True, **TINY)


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_checkpoint({"step": 1}, path)

    def broken_save(obj, file):
        with open(file, "wb") as handle:
            handle.write(b"half a checkp")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint({"step": 2}, path)
    monkeypatch.undo()
    assert torch.load(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_byte_tokenizer_round_trip():
    tok = ByteTokenizer()
    text = "Ünïcode, tabs\tand newlines\n"
    assert tok.decode(tok.encode(text)) == text
    assert tok.token_text(ord("a")) == "a" and tok.token_text(10) == "\\x0a"


def test_hugging_face_tokenizer_is_loaded_through_the_tokenizers_package(tmp_path, monkeypatch):
    vocabulary = {"<unk>": 0, "hello": 1, " world": 2}

    class FakeTokenizer:  # the part of tokenizers.Tokenizer that the adapter uses
        @staticmethod
        def from_file(path):
            assert path.endswith("tok.json")
            return FakeTokenizer()

        def get_vocab_size(self):
            return len(vocabulary)

        def encode(self, text, add_special_tokens=True):
            assert add_special_tokens is False
            return types.SimpleNamespace(ids=[vocabulary[w] for w in ("hello", " world") if w in text])

        def decode(self, ids):
            inverse = {v: k for k, v in vocabulary.items()}
            return "".join(inverse[i] for i in ids)

    (tmp_path / "tok.json").write_text("{}")
    monkeypatch.setitem(sys.modules, "tokenizers", types.SimpleNamespace(Tokenizer=FakeTokenizer))
    tok = load_tokenizer(str(tmp_path / "tok.json"))
    assert isinstance(tok, HuggingFaceTokenizer) and tok.vocab_size == 3
    assert tok.encode("hello world") == [1, 2] and tok.decode([1, 2]) == "hello world"
    monkeypatch.setitem(sys.modules, "tokenizers", None)  # not installed
    with pytest.raises(ValueError, match="pip install tokenizers"):
        load_tokenizer(str(tmp_path / "tok.json"))


def test_cli_train_generate_experts(tmp_path, capsys):
    args = [f"project={tmp_path}", "steps=4", "val_every=2", "progress=False", "d_model=32", "block=32", "batch=4"]
    assert text_cli.main(["train", *args]) == 0
    out = capsys.readouterr().out
    assert "val loss" in out and str(tmp_path / "train" / "last.pt") in out
    model = f"model={tmp_path / 'train' / 'last.pt'}"
    assert text_cli.main(["generate", model, "prompt=The lamp", "max_new_tokens=12", "temperature=0.9", "top_k=5"]) == 0
    assert capsys.readouterr().out.startswith("The lamp")
    assert text_cli.main(["experts", model, "top=4", "sample=256"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    expert_lines = [line for line in lines if line.startswith("layer ")]
    assert len(expert_lines) == 2 * 4  # 2 layers x 4 experts
    shares = [float(line.split("routed")[1].split("%")[0]) for line in expert_lines[:4]]
    assert math.isclose(sum(shares), 100.0, abs_tol=0.5)
    assert all(line.count("':") == 4 for line in expert_lines)


@pytest.mark.skipif(shutil.which("g++") is None and shutil.which("c++") is None, reason="Inductor needs a C++ compiler")
def test_cli_generate_with_a_compiled_step_prints_the_same_text(tmp_path, capsys, monkeypatch):
    from yolo_lat.text import static

    made = []

    class Recording(static.StaticDecoder):
        def __init__(self, *args, **kwargs):
            made.append(kwargs)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(static, "StaticDecoder", Recording)
    args = [f"project={tmp_path}", "steps=2", "val_every=2", "progress=False", "d_model=32", "block=32", "batch=4"]
    assert text_cli.main(["train", *args]) == 0
    capsys.readouterr()
    generate = ["generate", f"model={tmp_path / 'train' / 'last.pt'}", "prompt=The lamp", "max_new_tokens=16"]
    assert text_cli.main(generate) == 0
    plain = capsys.readouterr().out
    assert text_cli.main([*generate, "compile=True"]) == 0
    assert capsys.readouterr().out == plain and plain.startswith("The lamp")
    assert made == [{"compile": True, "cuda_graph": False, "max_length": 8 + 16}]  # only the second run compiled


def test_cli_help_and_errors(capsys):
    assert text_cli.main(["train", "--help"]) == 0
    assert "moe_bias=outer" in capsys.readouterr().out
    assert text_cli.main([]) == 0
    assert "experts" in capsys.readouterr().out
    with pytest.raises(ArgumentError, match="Did you mean 'steps'"):
        text_cli.main(["train", "stpes=3"])
    with pytest.raises(ArgumentError, match="Did you mean 'train'"):
        text_cli.main(["trian"])
    with pytest.raises(ArgumentError, match="expected an integer"):
        text_cli.main(["generate", "max_new_tokens=many"])

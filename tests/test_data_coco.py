"""COCO-JSON cross-check: Ultralytics' val (save_json=True) against pycocotools / faster-coco-eval on our JSON.

A real Ultralytics ``DetectionValidator`` runs on the synthetic val set, with its detections replaced by noisy
copies of the ground truth (jittered boxes, swapped classes, misses, false positives) so the mAP is far from 0
and 1 without training a model. Everything downstream is Ultralytics' own code: box scaling to the original
image, ``predictions.json``, its mAP, and its own faster-coco-eval run on ground truth it rebuilds in memory.
"""

import json

import numpy as np
import pytest
import torch

from yolo_lat.datasets.coco_json import evaluate_predictions, write_coco_annotations
from yolo_lat.datasets.synth import generate


def _noisy_truth_validator():
    from ultralytics.models.yolo.detect import DetectionValidator

    class NoisyTruthValidator(DetectionValidator):
        """Detections = ground truth with box jitter, 15% class swaps, 10% misses and 0-2 false positives."""

        rng = np.random.default_rng(0)

        def update_metrics(self, preds, batch):
            noisy = []
            for si in range(len(preds)):
                truth = self._prepare_batch(si, batch)
                boxes, classes = truth["bboxes"].cpu().numpy(), truth["cls"].cpu().numpy()
                keep = self.rng.random(len(classes)) > 0.1
                boxes, classes = boxes[keep], classes[keep].copy()
                size = np.concatenate([boxes[:, 2:] - boxes[:, :2]] * 2, 1)
                boxes = boxes + self.rng.normal(0, 0.1, boxes.shape) * size
                swap = self.rng.random(len(classes)) < 0.15
                classes[swap] = self.rng.integers(0, self.nc, swap.sum())
                conf = self.rng.uniform(0.3, 1.0, len(classes))
                n_false = int(self.rng.integers(0, 3))
                h, w = truth["imgsz"]
                corner = self.rng.uniform(0, 1, (n_false, 2)) * [w * 0.7, h * 0.7]
                false_boxes = np.concatenate([corner, corner + self.rng.uniform(5, 20, (n_false, 2))], 1)
                boxes = np.concatenate([boxes, false_boxes])
                classes = np.concatenate([classes, self.rng.integers(0, self.nc, n_false)])
                conf = np.concatenate([conf, self.rng.uniform(0.0, 0.6, n_false)])
                order = np.argsort(-conf)  # NMS output is sorted by confidence
                noisy.append(
                    {
                        "bboxes": torch.tensor(boxes[order], dtype=torch.float32),
                        "conf": torch.tensor(conf[order], dtype=torch.float32),
                        "cls": torch.tensor(classes[order], dtype=torch.float32),
                        "extra": torch.zeros((len(order), 0)),
                    }
                )
            super().update_metrics(noisy, batch)

    return NoisyTruthValidator


@pytest.mark.slow
def test_ultralytics_map_agrees_with_pycocotools_on_our_coco_json(tmp_path):
    from ultralytics.nn.tasks import DetectionModel

    # non-square images (aspect up to 1.6) so letterbox padding and the width/height order are exercised
    data_yaml = generate(tmp_path / "shapes", n_train=2, n_val=24, imgsz=96, seed=7, aspect=1.6, preview=False)
    annotations = data_yaml.parent / "annotations" / "instances_val.json"
    validator = _noisy_truth_validator()(
        args=dict(
            data=str(data_yaml),
            imgsz=96,
            batch=8,
            save_json=True,
            plots=False,
            project=str(tmp_path / "runs"),
            name="val",
            device="cpu",
            verbose=False,
        )
    )
    stats = validator(model=DetectionModel("yolov8n.yaml", nc=6, verbose=False))
    predictions = validator.save_dir / "predictions.json"
    written = json.loads(predictions.read_text())
    ours = json.loads(annotations.read_text())
    assert {p["image_id"] for p in written} <= {im["id"] for im in ours["images"]}  # int(stem) ids
    assert {p["category_id"] for p in written} <= {1, 2, 3, 4, 5, 6}  # class + 1

    coco = evaluate_predictions(predictions, annotations, backend="pycocotools")
    faster = evaluate_predictions(predictions, annotations, backend="faster_coco_eval")
    ultra = stats["metrics/mAP50-95(B)"]
    # the noisy detections give a mid-range mAP, so the comparison means something
    assert 0.2 < coco["map50_95"] < 0.8 and coco["detections"] == len(written)
    # the issue's requirement: Ultralytics' mAP50-95 within 0.01 of pycocotools on the same predictions
    # (measured 0.3172 vs 0.3199 here, |difference| 0.0027; 0.0011 and 0.0010 with seeds 8 and 9. The two differ
    # in precision interpolation and in how predictions are matched to boxes)
    assert abs(ultra - coco["map50_95"]) < 0.01, (ultra, coco)
    assert abs(stats["metrics/mAP50(B)"] - coco["map50"]) < 0.01, (stats, coco)  # measured 0.65688 vs 0.65695
    # both COCO tools agree to rounding
    for key in ("map50_95", "map50", "map75", "map_small", "map_medium"):
        assert faster[key] == pytest.approx(coco[key], abs=1e-6)
    # Ultralytics' own faster-coco-eval run (ground truth rebuilt in memory from the labels, dataloader indices
    # as ids) fills mAP_small/medium: measured equal to ours to 1e-15 (0.32792 and 0.28416), so ids, category ids
    # and box convention of our JSON match what Ultralytics builds; 1e-4 leaves room for letterbox rounding
    assert stats["metrics/mAP_small(B)"] == pytest.approx(coco["map_small"], abs=1e-4)
    assert stats["metrics/mAP_medium(B)"] == pytest.approx(coco["map_medium"], abs=1e-4)


def test_evaluate_predictions_scores_and_id_mismatch(tmp_path):
    data_yaml = generate(tmp_path / "shapes", n_train=2, n_val=6, imgsz=64, seed=2, empty_fraction=0, preview=False)
    annotations = json.loads((data_yaml.parent / "annotations" / "instances_val.json").read_text())
    perfect = [
        {"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 0.9}
        for a in annotations["annotations"]
    ]
    assert evaluate_predictions(perfect, annotations)["map50_95"] == pytest.approx(1.0)
    # every box shifted right by a full width: IoU 0, AP 0
    shifted = [{**p, "bbox": [p["bbox"][0] + p["bbox"][2], *p["bbox"][1:]]} for p in perfect]
    assert evaluate_predictions(shifted, annotations)["map50_95"] == pytest.approx(0.0)
    # one image's detections missing entirely still counts that image's boxes as misses
    first = annotations["images"][0]["id"]
    partial = [p for p in perfect if p["image_id"] != first]
    assert 0.3 < evaluate_predictions(partial, annotations)["map50"] < 0.999
    assert evaluate_predictions([], annotations)["map50_95"] == 0.0
    wrong_ids = [{**p, "image_id": f"img{p['image_id']}"} for p in perfect]
    with pytest.raises(ValueError, match="not in the annotations"):
        evaluate_predictions(wrong_ids, annotations)
    with pytest.raises(ValueError, match="backend="):
        evaluate_predictions(perfect, annotations, backend="other")


def test_write_coco_annotations_reproduces_the_generated_file(tmp_path):
    data_yaml = generate(tmp_path / "shapes", n_train=2, n_val=5, imgsz=64, seed=3, aspect=1.4, preview=False)
    written = write_coco_annotations(data_yaml, "val", tmp_path / "again.json")
    assert json.loads(written.read_text()) == json.loads(
        (data_yaml.parent / "annotations" / "instances_val.json").read_text()
    )

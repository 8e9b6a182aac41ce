"""Evidence that pretraining helps: lesion probes of a briefly pretrained backbone next to the same probes of the
same architecture left at its random initialisation.

1. phantom studies (`make_phantom_dataset`: labels lesion / significant / fold) preprocessed into a cache;
2. pretraining with `mri_dino.train` (its default config: DINO + iBOT + KoLeo, Sinkhorn-Knopp, a tiny 2D ViT on the
   cache's ROI slices) with views centred on the prostate (global crops 15-35% of the slice, local 3-10%, always
   guided to the ROI), 480 steps on CPU, with the `CollapseMonitor` watching the teacher's CLS features;
3. the teacher (read back from the run folder by `mri_dino.loading.load_backbone`) and a backbone of the same config
   at the initialisation the run started from go through the same protocol (`probe_cache`): features of every
   ROI slice (cropped around the prostate) averaged per study, weighted kNN (k=20, T=0.07) and linear probe,
   5-fold cross-validation;
4. tables: metric means over folds (± std) for both backbones, pretrained / random and the difference.

    PYTHONPATH=. python bench/probe_pretrained_vs_random.py                  # ~10 minutes on 2 CPU cores
    PYTHONPATH=. python bench/probe_pretrained_vs_random.py --seed 1         # other phantom studies, other run
    PYTHONPATH=. python bench/probe_pretrained_vs_random.py optim.epochs=60  # trailing key=value: training overrides

Trailing key.sub=value arguments override the training config (as for mri_dino_train; they win over the view
settings above). With --run an existing run folder (or any backbone `load_backbone` reads) is probed instead.
"""
import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from omegaconf import OmegaConf

from mri_dino.probes import METRICS, cache_features, probe_cache
from mri_dino.eval import CollapseMonitor, effective_rank, feature_spread
from mri_dino.features import evaluation_table
from mri_dino.loading import load_backbone
from mri_dino.phantom import make_phantom_dataset
from mri_dino.preprocess import preprocess_dataset
from mri_dino.train import backbone_config, seed_everything, train
from mri_dino.config import load_config
from mri_dino.backbones import build_backbone


# views centred on the prostate: the probes look at the prostate region, and a lesion is a few millimetres
PROSTATE_VIEWS = ['crops.global_crops_scale=[0.15,0.35]', 'crops.local_crops_scale=[0.03,0.1]', 'crops.crop_from_tumor_foreground=1.0']

def pretrain(data:Path, cache:Path, run:Path, args) -> Path:
    "Pretrain with mri_dino.train on the phantom studies (the cache already built); returns the run folder"
    overrides = [f'data.root={data}', f'data.cache_dir={cache}', f'train.output_dir={run}', f'optim.epochs={args.epochs}',
                 f'train.OFFICIAL_EPOCH_LENGTH={args.epoch_length}', f'train.seed={args.seed}', 'data.restrict=roi', 'data.margin=6.0',
                 f'train.print_every_steps={args.print_every}', 'train.tensorboard=false', 'train.checkpoint_every_steps=0',
                 f'train.num_workers={args.workers}', *PROSTATE_VIEWS, *args.overrides]
    cfg = load_config(None, overrides)
    monitor = CollapseMonitor(every=args.monitor_every, buffer_size=512, output_dir=run)
    start = time.perf_counter()
    learn = train(cfg, extra_cbs=[monitor])
    print(f"pretrained {learn.step} steps in {time.perf_counter() - start:.0f} s -> {run}", flush=True)
    print("teacher CLS features during pretraining (CollapseMonitor):")
    print(monitor.frame.to_string(index=False), flush=True)
    return run


def random_backbone(run_backbone):
    "The same architecture as the run's, at the initialisation the run started from (the run's seed, as train seeds it)"
    cfg = OmegaConf.create(run_backbone.run_config)
    seed_everything(int(cfg.train.seed))
    backbone = build_backbone(backbone_config(cfg)).eval()
    backbone.run_config = run_backbone.run_config
    return backbone


def table(results:dict) -> pd.DataFrame:
    "metric x (pretrained, random, ratio) for each probe"
    rows = []
    for probe in ('knn', 'linear'):
        for metric in METRICS:
            cells = {}
            for name in ('pretrained', 'random'):
                m = results[name][probe].metrics
                cells[name] = f"{m.loc['mean', metric]:.3f} ± {m.loc['std', metric]:.3f}"
                cells[f'{name}_mean'] = m.loc['mean', metric]
            ratio = cells['pretrained_mean'] / cells['random_mean'] if cells['random_mean'] > 0 else float('nan')
            rows.append(dict(probe=probe, metric=metric, pretrained=cells['pretrained'], random=cells['random'],
                             ratio=f"{ratio:.2f}", difference=f"{cells['pretrained_mean'] - cells['random_mean']:+.3f}"))
    return pd.DataFrame(rows)


def main(args):
    out = Path(args.out)
    data, cache = out / 'phantom', out / 'cache'
    if not (cache / 'index.csv').exists():
        start = time.perf_counter()
        make_phantom_dataset(data, n=args.studies, seed=args.seed, n_folds=args.folds)
        report = preprocess_dataset(data, cache, workers=args.workers or 1, progress=False)
        print(f"{report} (phantom + cache in {time.perf_counter() - start:.0f} s)", flush=True)
    run = Path(args.run) if args.run else pretrain(data, cache, out / 'run', args)
    pretrained = load_backbone(run)
    backbones = {'pretrained': pretrained, 'random': random_backbone(pretrained)}
    labels = evaluation_table(cache)
    print(f"{len(labels)} studies, {int(labels[args.label].sum())} with {args.label}, folds {sorted(labels.fold.unique())}")
    features = {name: cache_features(backbone, cache, batch_size=64) for name, backbone in backbones.items()}
    for name, f in features.items():
        for kind in ('cls', 'patch'):
            x = torch.as_tensor(f.get(kind))
            print(f"{name:>10} {kind:>5} features of {len(x)} slices: effective rank {effective_rank(x):.2f}, spread {feature_spread(x):.3f}")
    report = {}
    for kind in args.kinds.split(','):
        results = {name: probe_cache(backbone, cache, args.label, labels, ('knn', 'linear'), kind=kind, level='study',
                                     out=out / f'probe_{name}_{kind}', features=features[name])
                   for name, backbone in backbones.items()}
        summary = table(results)
        print(f"\n{args.label} probes on {kind} features, {args.folds}-fold CV over {len(labels)} phantom studies "
              f"(study means of the ROI slices; mean ± std over folds; ratio = pretrained / random)")
        print(summary.to_string(index=False), flush=True)
        report[kind] = summary.to_dict('records')
    (out / 'summary.json').write_text(json.dumps(dict(args=vars(args), tables=report), indent=1))


if __name__ == '__main__':
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--out', default='bench/results/probe_pretrained_vs_random')
    parser.add_argument('--run', default=None, help='probe this run folder / backbone instead of pretraining')
    parser.add_argument('--studies', type=int, default=80)
    parser.add_argument('--folds', type=int, default=5)
    parser.add_argument('--label', default='lesion')
    parser.add_argument('--epochs', type=int, default=30)
    parser.add_argument('--epoch-length', type=int, default=16, help='optimiser steps per epoch')
    parser.add_argument('--workers', type=int, default=1)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--print-every', type=int, default=40)
    parser.add_argument('--monitor-every', type=int, default=40, help='CollapseMonitor measurement period (steps)')
    parser.add_argument('--kinds', default='cls,patch', help='feature kinds to probe: cls, patch, cls+patch')
    parser.add_argument('--threads', type=int, default=1,
                        help='torch threads (1: on a shared CPU, more threads than free cores slow every step many times over)')
    parser.add_argument('overrides', nargs='*', help='training config overrides, key.sub=value')
    ARGS = parser.parse_args()
    torch.set_num_threads(ARGS.threads)
    main(ARGS)

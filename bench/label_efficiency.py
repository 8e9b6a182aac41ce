"""Label efficiency: frozen features of a briefly pretrained backbone next to the same architecture at its random
initialisation, probed with 1, 2, 4, 8 and all labelled training studies, 2D and 3D, on a phantom task that intensity
alone cannot solve.

1. two sets of phantom studies with *isointense* lesions (`make_phantom_dataset(..., lesion_texture=0.4)`: a lesion has
   its zone's mean signal on every sequence and differs only by a 2 mm checkerboard on the T2W), each preprocessed into a
   cache: an unlabelled set for pretraining, a labelled set (lesion in half the studies, 4 folds) downstream;
2. pretraining with `mri_dino.train` on the unlabelled cache only, 2D (the default vit_tiny, 8-pixel patches, 64-pixel
   views) and 3D (the same ViT on 8x64x64-voxel patches, 2x8x8-voxel tokens, 8x48x48 views), both with views centred on
   the prostate; checkpoints every 100 (2D) / 50 (3D) steps, so a rerun resumes a killed pretraining;
3. features of the labelled studies through the evaluation path (`SegmentationSlices`: ROI slices or the ROI volume,
   the run's input recipe) for the run's teacher and for `random_backbone` (the run's own initialisation);
4. for every fold held out in turn (all of them) and every training size, `--draws` seeded, label-stratified subsets
   of the other folds' studies (`finetune.training_subset`, the subsets of `--train-studies`):
   - classification of `lesion` (AUC) by DINO's weighted kNN and by a logistic-regression probe of the study's mean
     CLS token (`probes.knn_predict`, `probes.linear_probe_predict`), on every labelled study;
   - segmentation of the lesion map (Dice) by a logistic-regression probe of the patch tokens (a patch is lesion when
     half its pixels are), its probabilities upsampled to the pixels, on the lesion studies (subsets of them);
5. one table: per dim, task and size the fold means over draws, then mean ± sd over the folds, pretrained next to
   random and their difference; it is printed and written to OUT/label_efficiency.csv (and summary.json).

A reference row gives the AUC of a hand-made texture feature (the largest mean |Laplacian| of the T2W in the ROI over
the slices; nothing trained): the lesions can be told by texture, so the task is learnable from these images.

    PYTHONPATH=. python bench/label_efficiency.py                        # pretrains 2D and 3D, then probes
    PYTHONPATH=. python bench/label_efficiency.py --dims 2               # 2D only
    PYTHONPATH=. python bench/label_efficiency.py --run2d RUN --run3d RUN   # probe existing runs (folders or checkpoints)

With 1 study the probes see one class and answer a constant (AUC 0.5 by construction). `--finetune` adds the
attention-MIL fine-tune of the frozen backbone (`finetune_cache`, `--ft-epochs` epochs, one subset per fold) for
classification, every fold in turn: about 15 s a fine-tune on a quiet 2-core CPU (2D).

The measured table, the wall times and what was checked to find out why pretraining does not help on this task are in
bench/label_efficiency.md.
"""
import argparse
import contextlib
import io
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from mri_dino.config import load_config
from mri_dino.eval import effective_rank, feature_spread
from mri_dino.features import cache_loader, evaluation_image_size, evaluation_table
from mri_dino.finetune import finetune_cache, training_subset
from mri_dino.loading import input_settings, load_backbone, run_input_recipe
from mri_dino.phantom import make_phantom_dataset
from mri_dino.preprocess import preprocess_dataset
from mri_dino.probes import classification_metrics, knn_predict, linear_probe_predict
from mri_dino.segmentation import SegmentationSlices, patch_feature_map
from mri_dino.train import train

from probe_pretrained_vs_random import random_backbone   # the same architecture at the run's own initialisation (bench/ is on the path when a script here runs)

# views centred on the prostate, where the lesions are (as in probe_pretrained_vs_random.py)
PROSTATE_VIEWS = ['crops.global_crops_scale=[0.15,0.35]', 'crops.local_crops_scale=[0.03,0.1]', 'crops.crop_from_tumor_foreground=1.0']
# 3D: patches as thick as the prostate (8 slices of 3 mm), in-plane voxels kept (the checkerboard's squares are 2 voxels)
VOLUME_RUN = ['data.kind=patches', 'data.patch_size=[8,64,64]', 'crops.global_crops_size=[8,48,48]', 'crops.local_crops_size=[4,24,24]',
              'student.patch_size=[2,8,8]']


def phantom_cache(root:Path, n:int, seed:int, args, **kwargs) -> Path:
    "Phantom studies with isointense lesions in root/'raw', preprocessed into root/'cache' (reused when there)"
    cache = root / 'cache'
    if not (cache / 'index.csv').exists():
        start = time.perf_counter()
        make_phantom_dataset(root / 'raw', n=n, seed=seed, lesion_texture=args.lesion_texture, **kwargs)
        report = preprocess_dataset(root / 'raw', cache, workers=args.workers, progress=False)
        print(f"{report} ({root.name}: {n} studies in {time.perf_counter() - start:.0f} s)", flush=True)
    return cache


def pretrain(cache:Path, run:Path, dims:int, args) -> Path:
    "Pretrain with mri_dino.train on the unlabelled cache (resuming a killed run from its checkpoints); returns the run folder"
    steps, length = (args.steps2d, 20) if dims == 2 else (args.steps3d, 10)
    overrides = [f'data.root={cache.parent / "raw"}', f'data.cache_dir={cache}', f'train.output_dir={run}', f'optim.epochs={steps // length}',
                 f'train.OFFICIAL_EPOCH_LENGTH={length}', f'train.seed={args.seed}', 'data.restrict=roi', 'data.margin=6.0',
                 'train.print_every_steps=40', 'train.tensorboard=false', f'train.checkpoint_every_steps={100 if dims == 2 else 50}',
                 'train.keep_checkpoints=2', 'train.attention_map=false', f'train.num_workers={args.workers}', *PROSTATE_VIEWS,
                 *(VOLUME_RUN if dims == 3 else []), *args.overrides]
    start = time.perf_counter()
    learn = train(load_config(None, overrides))
    print(f"pretrained {dims}D: {learn.step} steps in {time.perf_counter() - start:.0f} s -> {run}", flush=True)
    return run


@torch.no_grad()
def encode(backbone, cache:Path, ids:list) -> dict:
    "Per study: CLS tokens (S, D), patch tokens on their grid (S, D, *grid) and the lesion share of each patch (S, *grid)"
    loader = cache_loader(cache, 'lesion', input_settings(backbone)['modalities'])
    size = evaluation_image_size(backbone, None)
    dims = getattr(backbone, 'spatial_dims', 2)
    patch = tuple(backbone.patch_size) if not isinstance(backbone.patch_size, int) else (backbone.patch_size,) * dims
    grid = tuple(s // p for s, p in zip(size, patch))
    out = {}
    for study in ids:
        items = SegmentationSlices(loader, [study], size, roi_margin=0, dims=dims, context=0.25, recipe=run_input_recipe(backbone))
        images, masks, labels = (torch.stack(parts) for parts in zip(*items.items))
        tokens = backbone.forward_features(images, modality_mask=masks)
        pooled = F.avg_pool2d if dims == 2 else F.avg_pool3d
        out[study] = dict(cls=tokens['x_norm_clstoken'].float(), patch=patch_feature_map(tokens['x_norm_patchtokens'].float(), grid),
                          share=pooled((labels == 1).float()[:, None], patch)[:, 0], labels=labels, size=size)
    return out


def texture_scores(cache:Path, ids:list) -> np.ndarray:
    "A hand-made texture feature per study: the largest (over the ROI's slices) mean |Laplacian| of the T2W in the ROI"
    load, scores = cache_loader(cache, 'roi', None), []
    for study in ids:
        s = load(study)
        t2w, roi = np.asarray(s['image'])[0].astype(float), np.asarray(s['label_map']).reshape(np.asarray(s['image']).shape[1:]) > 0
        laplacian = np.abs(4 * t2w[:, 1:-1, 1:-1] - t2w[:, 2:, 1:-1] - t2w[:, :-2, 1:-1] - t2w[:, 1:-1, 2:] - t2w[:, 1:-1, :-2])
        inside = roi[:, 1:-1, 1:-1]
        scores.append(max(laplacian[z][inside[z]].mean() for z in range(len(t2w)) if inside[z].any()))
    return np.asarray(scores)


def classify(features:dict, table:pd.DataFrame, train_ids:list, test_ids:list, probe:str) -> float:
    "AUC on the test studies of a probe of the study-mean CLS tokens fitted on the training studies"
    x = lambda ids: np.stack([features[i]['cls'].mean(0).numpy() for i in ids])
    y = lambda ids: table.loc[ids, 'lesion'].to_numpy().astype(int)
    if probe == 'knn': probabilities = knn_predict(x(train_ids), y(train_ids), x(test_ids), k=min(20, len(train_ids)), n_classes=2)
    else: probabilities = linear_probe_predict(x(train_ids), y(train_ids), x(test_ids), C=[0.01, 0.1, 1.0], n_classes=2)
    return classification_metrics(y(test_ids), probabilities)['auc']


def segment(features:dict, train_ids:list, test_ids:list) -> float:
    "Mean Dice over the test studies of a logistic-regression probe of the patch tokens (balanced classes), upsampled to the pixels"
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    rows = lambda ids: torch.cat([features[i]['patch'].movedim(1, -1).reshape(-1, features[i]['patch'].shape[1]) for i in ids]).numpy()
    targets = torch.cat([(features[i]['share'] >= 0.5).reshape(-1) for i in train_ids]).numpy().astype(int)
    if len(np.unique(targets)) < 2: return 0.0
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, class_weight='balanced', max_iter=1000)).fit(rows(train_ids), targets)
    scores = []
    for study in test_ids:
        f = features[study]
        probability = torch.as_tensor(model.predict_proba(rows([study]))[:, 1]).float().view(len(f['patch']), 1, *f['patch'].shape[2:])
        mode = 'bilinear' if probability.ndim == 4 else 'trilinear'
        predicted = F.interpolate(probability, size=tuple(f['size']), mode=mode, align_corners=False)[:, 0] >= 0.5
        truth = f['labels'] == 1
        total = predicted.sum() + truth.sum()
        scores.append(float(2 * (predicted & truth).sum() / total) if total else float('nan'))
    return float(np.nanmean(scores))


def fold_means(table, folds, sizes, draws, score, pool) -> dict:
    "size -> one value per fold: `score(train_ids, test_ids)` averaged over the draws of the training subset"
    result = {}
    for n in sizes:
        values = []
        for fold in folds:
            test = [i for i in pool if str(table.loc[i, 'fold']) == str(fold)]
            available = [i for i in pool if str(table.loc[i, 'fold']) != str(fold)]
            seeds = range(draws) if n is not None and n < len(available) else [0]
            values.append(np.nanmean([score(training_subset(available, None if n is None else min(n, len(available)),
                                                            labels=table.loc[available, 'lesion'].tolist(), seed=s), test) for s in seeds]))
        result['all' if n is None else n] = values
    return result


def finetuned_auc(backbone, cache, table, fold, n, args) -> float:
    "The validation AUC on `fold` of the frozen attention-MIL fine-tune (`finetune_cache`) on `n` of the other folds' studies"
    state = {k: v.clone() for k, v in backbone.state_dict().items()}      # the frozen backbone must come back untouched
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):   # fastai's epoch tables
        _, metrics = finetune_cache(backbone, cache, table=table, valid_folds=[fold], epochs=args.ft_epochs,
                                    device='cpu', seed=args.seed, max_slices=8, train_studies=n)
    if any(not torch.equal(v, backbone.state_dict()[k]) for k, v in state.items()): raise RuntimeError("the frozen backbone changed")
    return float(metrics['valid']['auc'])


def main(args):
    out = Path(args.out)
    unlabelled = phantom_cache(out / 'unlabelled', args.pretrain_studies, args.seed + 1000, args)
    labelled = phantom_cache(out / 'labelled', args.studies, args.seed, args, n_folds=args.folds, lesion_prob=0.5)
    table = evaluation_table(labelled)
    ids, folds = [str(i) for i in table.index], sorted(table.fold.unique())
    sizes = [int(s) for s in args.sizes.split(',')] + [None]
    lesion_ids = [i for i in ids if table.loc[i, 'lesion'] == 1]
    rows, start = [], time.perf_counter()
    texture = pd.Series(texture_scores(labelled, ids), index=ids)
    reference = [classification_metrics(table.loc[[i for i in ids if table.loc[i, 'fold'] == f], 'lesion'].astype(int),
                                        np.stack([-texture[[i for i in ids if table.loc[i, 'fold'] == f]], texture[[i for i in ids if table.loc[i, 'fold'] == f]]], 1))['auc']
                 for f in folds]
    print(f"texture reference (no training): AUC {np.mean(reference):.3f} ± {np.std(reference):.3f} over the folds", flush=True)
    for dims in [int(d) for d in args.dims.split(',')]:
        given = args.run2d if dims == 2 else args.run3d
        run = Path(given) if given else out / f'run{dims}d'
        if not given and not (run / 'run_summary.json').exists(): pretrain(unlabelled, run, dims, args)   # written at the end of a run
        pretrained = load_backbone(run)
        backbones = {'pretrained': pretrained, 'random': random_backbone(pretrained)}
        features = {name: encode(backbone, labelled, ids) for name, backbone in backbones.items()}
        for name, f in features.items():
            cls = torch.stack([f[i]['cls'].mean(0) for i in ids])
            print(f"{dims}D {name:>10}: study CLS effective rank {effective_rank(cls):.2f}, spread {feature_spread(cls):.3f} "
                  f"({time.perf_counter() - start:.0f} s)", flush=True)
        tasks = {('AUC', 'kNN'): (lambda f: lambda tr, te: classify(f, table, tr, te, 'knn'), ids),
                 ('AUC', 'linear'): (lambda f: lambda tr, te: classify(f, table, tr, te, 'linear'), ids),
                 ('Dice', 'linear patch'): (lambda f: lambda tr, te: segment(f, tr, te), lesion_ids)}
        for (metric, probe), (scorer, pool) in tasks.items():
            per_backbone = {name: fold_means(table, folds, sizes, args.draws, scorer(f), pool) for name, f in features.items()}
            for size in per_backbone['pretrained']:
                p, r = (np.asarray(per_backbone[name][size]) for name in ('pretrained', 'random'))
                rows.append(dict(dims=f'{dims}D', metric=metric, probe=probe, studies=size, pretrained=f"{np.nanmean(p):.3f} ± {np.nanstd(p):.3f}",
                                 random=f"{np.nanmean(r):.3f} ± {np.nanstd(r):.3f}", difference=f"{np.nanmean(p) - np.nanmean(r):+.3f}",
                                 pretrained_folds=p.round(3).tolist(), random_folds=r.round(3).tolist()))
                print(f"{dims}D {metric} {probe:>12} {str(size):>3} studies: pretrained {rows[-1]['pretrained']}, random {rows[-1]['random']} "
                      f"({time.perf_counter() - start:.0f} s)", flush=True)
        if args.finetune:
            for size in sizes:
                values = {name: np.asarray([finetuned_auc(backbone, labelled, table, fold, size, args) for fold in folds])
                          for name, backbone in backbones.items()}
                p, r = values['pretrained'], values['random']
                rows.append(dict(dims=f'{dims}D', metric='AUC', probe='MIL fine-tune', studies='all' if size is None else size,
                                 pretrained=f"{np.nanmean(p):.3f} ± {np.nanstd(p):.3f}", random=f"{np.nanmean(r):.3f} ± {np.nanstd(r):.3f}",
                                 difference=f"{np.nanmean(p) - np.nanmean(r):+.3f}", pretrained_folds=p.round(3).tolist(), random_folds=r.round(3).tolist()))
                print(f"{dims}D AUC MIL fine-tune {rows[-1]['studies']:>3} studies: pretrained {rows[-1]['pretrained']}, random {rows[-1]['random']} "
                      f"({time.perf_counter() - start:.0f} s)", flush=True)
    frame = pd.DataFrame(rows)
    print(f"\nlesion (isointense, textured) on {len(ids)} labelled phantom studies ({len(lesion_ids)} with a lesion), each of the "
          f"{len(folds)} folds held out in turn; a fold's value is the mean over {args.draws} draws of the training studies; "
          f"mean ± sd over the folds; frozen features. Texture reference (no training): AUC {np.mean(reference):.3f} ± {np.std(reference):.3f}")
    print(frame.drop(columns=[c for c in frame if c.endswith('_folds')]).to_string(index=False), flush=True)
    frame.to_csv(out / 'label_efficiency.csv', index=False)
    (out / 'summary.json').write_text(json.dumps(dict(args=vars(args), texture_reference=reference, rows=rows), indent=1, default=str))


if __name__ == '__main__':
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--out', default='bench/results/label_efficiency')
    parser.add_argument('--dims', default='2,3', help='2, 3 or 2,3')
    parser.add_argument('--run2d', default=None, help='probe this 2D run folder / checkpoint instead of pretraining')
    parser.add_argument('--run3d', default=None, help='probe this 3D run folder / checkpoint instead of pretraining')
    parser.add_argument('--studies', type=int, default=40, help='labelled phantom studies')
    parser.add_argument('--pretrain-studies', type=int, default=40, help='unlabelled phantom studies for pretraining')
    parser.add_argument('--folds', type=int, default=4)
    parser.add_argument('--sizes', default='1,2,4,8', help="training-set sizes (studies), 'all' is added")
    parser.add_argument('--draws', type=int, default=5, help='seeded training subsets per fold and size')
    parser.add_argument('--lesion-texture', type=float, default=0.4, help="the lesions' checkerboard contrast")
    parser.add_argument('--steps2d', type=int, default=800, help='2D pretraining steps (20 per epoch)')
    parser.add_argument('--steps3d', type=int, default=300, help='3D pretraining steps (10 per epoch)')
    parser.add_argument('--finetune', action='store_true', help='also the frozen attention-MIL fine-tune (classification, every fold)')
    parser.add_argument('--ft-epochs', type=int, default=10, help='--finetune: epochs')
    parser.add_argument('--workers', type=int, default=1)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--threads', type=int, default=1, help='torch threads')
    parser.add_argument('overrides', nargs='*', help='pretraining config overrides, key.sub=value')
    ARGS = parser.parse_args()
    torch.set_num_threads(ARGS.threads)
    main(ARGS)

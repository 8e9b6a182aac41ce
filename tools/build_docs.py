"""Build the docs site without Quarto, and check it.

Quarto cannot be installed on every machine (CI here among them), so this script does what
`nbdev-docs` does up to the point where Quarto takes over, then stands in for Quarto:

1. `nbdev-proc-nbs`: nbdev's own processing of every notebook for the docs (it executes the
   exported and `show_doc` cells, and every cell that imports something). A failure here is
   a failure of `nbdev-docs` too, so the build stops with the notebook and cell named.
   nbdev executes every cell that holds an import while building the docs, so a test cell
   must not import anything (a failing or slow test there breaks or slows the docs build).
2. Every processed notebook is rendered to HTML with nbconvert, with a sidebar in the order
   of `sidebar.yml`, into `_docs/` (the `output-dir` of `nbs/nbdev.yml`).
3. Every `<img>` of every rendered page must point to a file in the output (or be a `data:`
   URI or a web address): a picture the index page (or any page) links but the build did not
   copy fails the build.
4. With `--screenshot FILE`, headless Chromium opens the rendered index page and saves a
   screenshot; the build fails when Chromium cannot render it or the picture is blank.

Before all that, two cheap checks of the notebooks:

- every notebook is listed in the hand-written `nbs/sidebar.yml`, and it lists nothing else;
- no cell mixes imports with other code. nbdev executes, while building the docs, every cell
  that holds an import statement (anywhere in the cell), so such a cell (a test, a setup step)
  runs during the docs build; split it, imports in a cell of their own. `#| export`-like cells
  are exempt (nbdev runs them anyway: they are the module), so are `#| eval: false` cells
  (never run) and the last `nbdev_export()` cell. Notebooks in `MIXED_IMPORTS_REPORT_ONLY`
  are only reported.

Usage: `python tools/build_docs.py [--out _docs] [--screenshot _docs/index.png]`.
"""
from __future__ import annotations

import argparse, ast, html, json, os, re, shutil, subprocess, sys, tempfile
from pathlib import Path
from urllib.parse import unquote, urlsplit

import nbformat, yaml
from nbconvert import HTMLExporter
from nbconvert.preprocessors import TagRemovePreprocessor

ROOT = Path(__file__).resolve().parents[1]


# Notebooks whose import-mixing cells are reported but do not fail the build yet: they belong to
# branches being merged (the coordinator empties this set once those cells are split).
MIXED_IMPORTS_REPORT_ONLY: set[str] = set()   # every notebook is held to it
_ALWAYS_RUN = {'export', 'exports', 'exporti', 'exec_doc'}      # nbdev executes these cells anyway


def _directives(source:str) -> dict:
    return {m.group(1): m.group(2).strip() for m in re.finditer(r'^#\|\s*([\w-]+):?(.*)$', source, re.M)}


def import_mixing_cells(notebook_path) -> list[tuple[int, str]]:
    "(cell index, its first statement that is not an import) of each cell nbdev would execute for its imports that also holds other code"
    from fastcore.nbio import read_nb
    found = []
    for cell in read_nb(notebook_path).cells:
        if cell.cell_type != 'code' or 'nbdev_export'+'()' in cell.source: continue
        trees = cell.parsed_()                       # None for magics and shell lines, which nbdev does not run either
        if not trees: continue
        directives = _directives(cell.source)
        if directives.get('eval', '').lower() == 'false' or directives.keys() & _ALWAYS_RUN: continue
        if not any(isinstance(node, (ast.Import, ast.ImportFrom)) for tree in trees for node in ast.walk(tree)): continue
        others = [tree for tree in trees if not isinstance(tree, (ast.Import, ast.ImportFrom))]
        if others: found.append((cell.idx_, cell.source.splitlines()[others[0].lineno - 1].strip()))   # the first non-import line
    return found


def check_import_mixing(nbs:Path) -> list[str]:
    "Fail on cells mixing imports with other code; only report those in `MIXED_IMPORTS_REPORT_ONLY`"
    failing, reported = [], []
    for path in sorted(nbs.rglob('*.ipynb')):
        if any(part.startswith(('.', '_')) for part in path.relative_to(nbs).parts): continue
        name = path.relative_to(nbs).with_suffix('').as_posix()
        for index, line in import_mixing_cells(path):
            (reported if name in MIXED_IMPORTS_REPORT_ONLY else failing).append(f'{name}.ipynb cell {index}: {line[:90]}')
    if reported:
        print(f'note: {len(reported)} cell(s) mix imports with other code in notebooks not yet held to it '
              '(nbdev runs them while building the docs):\n  ' + '\n  '.join(reported))
    if failing:
        raise SystemExit(f'{len(failing)} cell(s) mix imports with other code, so nbdev runs them while building the docs; '
                         'put the imports in a cell of their own:\n  ' + '\n  '.join(failing))
    return reported


def missing_pictures(page:Path) -> list[str]:
    "`src` of each `<img>` on a rendered page that is not a file beside it (`data:` URIs and web addresses are fine)"
    text = page.read_text(encoding='utf-8')
    missing = []
    for source in re.findall(r'<img\b[^>]*?\bsrc\s*=\s*["\']([^"\']*)["\']', text, re.I):
        parts = urlsplit(html.unescape(source))
        if parts.scheme or parts.netloc: continue             # data:, http(s):, file:, //host/...
        if not parts.path or not (page.parent / unquote(parts.path)).is_file(): missing.append(source)
    return missing


def check_pictures(pages:list[Path]) -> int:
    "Fail when a rendered page shows a picture that is not in the output; returns the number of pictures"
    problems = {page.name: found for page in pages if (found := missing_pictures(page))}
    if problems:
        raise SystemExit('pictures missing from the docs output (linked by a page, not copied):\n  ' +
                         '\n  '.join(f'{name}: {", ".join(found)}' for name, found in problems.items()))
    return sum(len(re.findall(r'<img\b', page.read_text(encoding='utf-8'), re.I)) for page in pages)


def _test_missing_pictures():
    "The picture check finds a missing file and passes present ones, data URIs and web addresses"
    with tempfile.TemporaryDirectory() as folder:
        page = Path(folder) / 'index.html'
        (Path(folder) / 'images').mkdir(); (Path(folder) / 'images' / 'here.png').write_bytes(b'png')
        page.write_text('<img src="images/here.png"><img alt="x" src="images/gone.png"><img src="data:image/png;base64,AAAA">'
                        '<IMG SRC="https://example.org/a.png"><img src="images/here.png?v=1">', encoding='utf-8')
        assert missing_pictures(page) == ['images/gone.png'], missing_pictures(page)
        try: check_pictures([page]); raise AssertionError('check_pictures passed a page with a missing picture')
        except SystemExit as e: assert 'gone.png' in str(e), e


def process_notebooks() -> Path:
    "Run nbdev's docs processing into `_proc/`; raise with nbdev's message when it fails."
    # `nbdev-proc-nbs --force` would also pass `force` to nbdev's sidebar generator, which then
    # overwrites our hand-written nbs/sidebar.yml (custom_sidebar = true) with a list of every
    # file in nbs/; emptying `_proc` ourselves has the same effect on the processing.
    sidebar = ROOT/'nbs'/'sidebar.yml'
    before = sidebar.read_bytes()
    shutil.rmtree(ROOT/'_proc', ignore_errors=True)
    result = subprocess.run(['nbdev-proc-nbs'], cwd=ROOT, capture_output=True, text=True)
    output = result.stdout + result.stderr
    if sidebar.read_bytes() != before:
        sidebar.write_bytes(before)
        raise SystemExit('nbdev-proc-nbs rewrote nbs/sidebar.yml (put back as it was); is custom_sidebar still true in pyproject.toml?')
    if result.returncode != 0 or 'Traceback' in output:
        raise SystemExit(f'nbdev-proc-nbs failed (the docs processing of a notebook):\n{output[-6000:]}')
    return ROOT/'_proc'

def _sidebar_entries(path:Path) -> list[str]:
    def walk(items):
        for item in items:
            if isinstance(item, str): yield item
            elif isinstance(item, dict):
                yield from walk(item.get('contents', [])) if 'contents' in item else ([item['href']] if 'href' in item else [])
    return list(walk(yaml.safe_load(path.read_text(encoding='utf-8'))['website']['sidebar']['contents']))


def check_sidebar(nbs:Path) -> None:
    "Fail when a notebook is missing from the hand-written `sidebar.yml`, or it lists a file that does not exist"
    listed = _sidebar_entries(nbs/'sidebar.yml')
    notebooks = {p.relative_to(nbs).as_posix() for p in nbs.rglob('*.ipynb')
                 if not any(part.startswith(('.', '_')) for part in p.relative_to(nbs).parts)}
    problems = [f'{n} is not in nbs/sidebar.yml' for n in sorted(notebooks - set(listed))]
    problems += [f'nbs/sidebar.yml lists {n}, which is not a notebook in nbs/' for n in listed if n not in notebooks]
    if problems: raise SystemExit('the sidebar is out of date:\n  ' + '\n  '.join(problems))


def sidebar_order(proc: Path) -> list[str]:
    "Notebook names (without suffix) in the order of `sidebar.yml`, sections flattened."
    sidebar = yaml.safe_load((proc/'sidebar.yml').read_text(encoding='utf-8'))['website']['sidebar']['contents']
    def walk(items):
        for item in items:
            if isinstance(item, str): yield item
            elif isinstance(item, dict):
                yield from walk(item.get('contents', [])) if 'contents' in item else ([item['href']] if 'href' in item else [])
    return [Path(name).with_suffix('').as_posix() for name in walk(sidebar) if name.endswith('.ipynb')]


def frontmatter_value(notebook, key) -> str|None:
    "A value of the YAML frontmatter cell nbdev writes (`title`, `description`)."
    for cell in notebook.cells:
        if cell.cell_type == 'raw' and cell.source.startswith('---'):
            return (yaml.safe_load(cell.source.strip().strip('-')) or {}).get(key)


def notebook_title(notebook) -> str:
    "The title from the frontmatter cell nbdev writes, else the first heading."
    if title := frontmatter_value(notebook, 'title'): return title
    for cell in notebook.cells:
        heading = re.search(r'^#\s+(.+)$', cell.source, re.M) if cell.cell_type == 'markdown' else None
        if heading: return heading.group(1).strip()
    return 'untitled'


CELL_KEYS = {'cell_type', 'id', 'metadata', 'source', 'outputs', 'execution_count', 'attachments'}

def tidy(notebook):
    "What Quarto would do with nbdev's processed cells: drop frontmatter and extra keys, obey `echo`/`output`."
    cells = []
    for cell in notebook.cells:
        if cell.cell_type == 'raw': continue                 # Quarto frontmatter
        for key in set(cell) - CELL_KEYS: del cell[key]      # nbdev's bookkeeping (e.g. `has_sd`)
        cell.metadata.pop('execution', None)                 # execution timings, not in nbformat's schema
        directives = dict(re.findall(r'^#\|\s*([\w-]+):\s*(\S+)', cell.source, re.M))
        if cell.cell_type == 'code':
            if directives.get('output') == 'false': cell.outputs = []
            if directives.get('echo') == 'false' or not cell.source.strip():
                cell.metadata.setdefault('tags', []).append('remove_input')
            cell.source = re.sub(r'^#\|.*\n?', '', cell.source, flags=re.M)
            if not cell.source.strip() and not cell.outputs: continue
        cells.append(cell)
    notebook.cells = cells


def render(proc: Path, out: Path) -> list[Path]:
    "Render every processed notebook to `out/<name>.html` with a shared sidebar."
    names = sidebar_order(proc)
    names += sorted(p.relative_to(proc).with_suffix('').as_posix() for p in proc.rglob('*.ipynb')
                    if p.relative_to(proc).with_suffix('').as_posix() not in names)
    notebooks = {name: nbformat.read(proc/f'{name}.ipynb', as_version=4) for name in names
                 if (proc/f'{name}.ipynb').exists()}
    titles = {name: notebook_title(notebook) for name, notebook in notebooks.items()}
    for name, notebook in notebooks.items():
        tidy(notebook)
        description = frontmatter_value(notebook, 'description')
        heading = f'# {titles[name]}' + (f'\n\n*{description}*' if description else '')
        notebook.cells.insert(0, nbformat.v4.new_markdown_cell(heading))
    if out.exists(): shutil.rmtree(out)
    out.mkdir(parents=True)
    exporter = HTMLExporter(template_name='lab')
    exporter.register_preprocessor(TagRemovePreprocessor(remove_input_tags={'remove_input'}), enabled=True)
    written = []
    for name, notebook in notebooks.items():
        depth = name.count('/')
        links = '\n'.join(
            f'<li><a href="{"../" * depth}{other}.html"{" class=current" if other == name else ""}>'
            f'{html.escape(titles[other])}</a></li>' for other in notebooks)
        body, _ = exporter.from_notebook_node(notebook)
        nav = (f'<nav id="mri-dino-sidebar"><p><b>mri_dino</b></p><ul>{links}</ul></nav>'
               '<style>#mri-dino-sidebar{position:fixed;top:0;left:0;width:230px;height:100%;overflow:auto;'
               'background:#f6f8fa;font:14px sans-serif;padding:8px;box-sizing:border-box}'
               '#mri-dino-sidebar ul{padding-left:14px}#mri-dino-sidebar .current{font-weight:bold}'
               'body{margin-left:240px !important}</style>')
        body = body.replace('<body', '<body data-page="' + html.escape(name) + '"', 1)
        body = re.sub(r'(<body[^>]*>)', lambda m: m.group(1) + nav, body, count=1)
        target = out/f'{name}.html'
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(body, encoding='utf-8')
        written.append(target)
    for extra in proc.rglob('*'):      # pictures and data files the pages link to
        if extra.is_file() and extra.suffix.lower() in {'.png', '.jpg', '.jpeg', '.svg', '.gif', '.css'}:
            destination = out/extra.relative_to(proc)
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(extra, destination)
    return written


def find_chromium() -> str:
    for name in ('chromium', 'chromium-browser', 'google-chrome', 'chrome'):
        if found := shutil.which(name): return found
    raise SystemExit('No Chromium found for the screenshot (Debian: apt-get install chromium)')


def screenshot(page: Path, target: Path, width=1280, height=2400) -> Path:
    "Open `page` in headless Chromium, save a PNG to `target`, and check it is not blank."
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as profile:
        command = [find_chromium(), '--headless', '--no-sandbox', '--disable-gpu', '--hide-scrollbars',
                   f'--user-data-dir={profile}', f'--window-size={width},{height}',
                   f'--screenshot={target}', page.resolve().as_uri()]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if result.returncode != 0 or not target.exists():
        raise SystemExit(f'Chromium could not render {page}:\n{result.stderr[-3000:]}')
    from PIL import Image
    with Image.open(target) as image:
        colours = image.convert('RGB').resize((320, 600)).getcolors(maxcolors=1 << 16)
    if colours is not None and len(colours) < 50:
        raise SystemExit(f'The screenshot {target} looks blank ({len(colours)} colours)')
    return target


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', default=None, help="output folder (default: nbdev.yml's output-dir)")
    parser.add_argument('--screenshot', default=None, help='save a Chromium screenshot of the index page here')
    args = parser.parse_args(argv)
    out = Path(args.out) if args.out else ROOT/(yaml.safe_load((ROOT/'nbs/nbdev.yml').read_text(encoding='utf-8'))
                                               .get('project', {}).get('output-dir', '_docs'))
    _test_missing_pictures()
    check_sidebar(ROOT/'nbs')
    check_import_mixing(ROOT/'nbs')
    proc = process_notebooks()
    pages = render(proc, out)
    images = check_pictures(pages)
    index_pictures = [p for p in re.findall(r'<img\b[^>]*?\bsrc\s*=\s*["\']([^"\']*)["\']',
                                              (out/'index.html').read_text(encoding='utf-8'), re.I) if not p.startswith('data:')]
    print(f'docs: {len(pages)} pages, {images} pictures in {out}; the index page links {index_pictures}')
    if args.screenshot:
        print(f'screenshot: {screenshot(out/"index.html", Path(args.screenshot))}')


if __name__ == '__main__':
    main()

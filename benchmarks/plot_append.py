"""Plot a bench_append.py --json result for the docs: commits/s (with the
ceiling marked) and bytes per push, one bar per workload.

    python benchmarks/plot_append.py RESULT.json [-o docs/_static/append.png]
"""
import argparse
import json
import os

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT = os.path.join(HERE, '..', 'docs', '_static', 'append.png')


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('json')
    parser.add_argument('-o', '--output', default=DEFAULT)
    args = parser.parse_args(argv)
    with open(args.json) as f:
        result = json.load(f)
    keys = [k for k in result['labels'] if k in result['summary']]
    labels = [result['labels'][k] for k in keys]
    summary = [result['summary'][k] for k in keys]
    colours = ['#c0392b' if k.startswith('stack-') else
               '#7f8c8d' if k.startswith('stack12') else '#2980b9'
               for k in keys]
    fig, (rate, size) = plt.subplots(1, 2, figsize=(13, 5))
    y = range(len(keys))
    rate.barh(y, [s['commits_per_s'] for s in summary], color=colours)
    ceiling = result['summary'].get('ceiling', {}).get('commits_per_s')
    if ceiling:
        rate.axvline(ceiling, color='black', linestyle=':', linewidth=1)
    rate.set_yticks(list(y), labels)
    rate.invert_yaxis()
    rate.set_xlabel('commits per second (median; dotted: the ceiling)')
    for i, s in enumerate(summary):
        if s.get('lost'):
            rate.text(s['commits_per_s'], i, f"  {s['lost']} lost",
                      va='center', color='#c0392b')
    size.barh(y, [s['bytes_per_push'] for s in summary], color=colours)
    size.set_xscale('log')
    size.set_yticks(list(y), [''] * len(keys))
    size.invert_yaxis()
    size.set_xlabel('bytes written to Data.fs per push (log scale)')
    p = result['parameters']
    fig.suptitle(f"{p.get('threads', p.get('k', 4))} writer threads, one "
                 f"push per transaction, FileStorage; red: this package, "
                 f"grey: appendonly 1.2, blue: plain ZODB")
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    fig.savefig(args.output, dpi=90)
    print('wrote', os.path.relpath(args.output))


if __name__ == '__main__':
    main()

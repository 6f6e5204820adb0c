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
    found = result['summary']['append']
    keys = [k for k, _ in result['competitors'] if k in found]
    labels = [dict(result['competitors'])[k] for k in keys]
    summary = [found[k] for k in keys]
    colours = ['#c0392b' if k.startswith('stack-') else
               '#7f8c8d' if k.startswith('stack12') else '#2980b9'
               for k in keys]
    fig, (rate, size) = plt.subplots(1, 2, figsize=(13, 5))
    y = range(len(keys))
    rate.barh(y, [s['rate'] for s in summary], color=colours)
    ceiling = found.get('ceiling', {}).get('rate')
    if ceiling:
        rate.axvline(ceiling, color='black', linestyle=':', linewidth=1)
    rate.set_yticks(list(y), labels)
    rate.invert_yaxis()
    rate.set_xlabel('commits per second (median; dotted: the ceiling)')
    for i, s in enumerate(summary):
        if s['lost_median']:
            rate.text(s['rate'], i, f"  {s['lost_median']:.0f} lost",
                      va='center', color='#c0392b')
    size.barh(y, [s['extra']['bytes_per_push'] for s in summary],
              color=colours)
    size.set_xscale('log')
    size.set_yticks(list(y), [''] * len(keys))
    size.invert_yaxis()
    size.set_xlabel('bytes written to Data.fs per push (log scale)')
    p = result['parameters']
    fig.suptitle(f"{p['threads']} writer threads, one push per "
                 f"transaction, FileStorage, median of {p['rounds']} rounds;"
                 f" red: this package, grey: appendonly 1.2, blue: plain "
                 f"ZODB and the ceiling")
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    fig.savefig(args.output, dpi=90)
    print('wrote', os.path.relpath(args.output))


if __name__ == '__main__':
    main()

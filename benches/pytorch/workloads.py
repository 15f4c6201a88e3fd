"""The workloads of benches/workloads/ in PyTorch, for a side-by-side run on the same machine.

Not part of the build or the tests: run it from a scratch virtual environment,

    python3 -m venv .torch-venv && .torch-venv/bin/pip install torch
    .torch-venv/bin/python benches/pytorch/workloads.py --threads 1

right before or after `RAYON_NUM_THREADS=1 cargo bench`, and compare the two as ratios. Shapes,
FLOP counts, data and timing follow benches/workloads/main.rs: warm up (at least 5 calls and
0.5 s), then time each call alone until at least 30 calls and 3 s; print the median and the
fastest call.
"""

import argparse
import statistics
import time

import torch
import torch.nn.functional as F


def timed(call):
    start, calls = time.perf_counter(), 0
    while calls < 5 or time.perf_counter() - start < 0.5:
        call()
        calls += 1
    times, start = [], time.perf_counter()
    while len(times) < 30 or time.perf_counter() - start < 3.0:
        began = time.perf_counter()
        call()
        times.append(time.perf_counter() - began)
    return statistics.median(times), min(times)


def fan_in_uniform(shape, fan_in):
    bound = fan_in**-0.5
    return ((torch.rand(shape) * 2 - 1) * bound).requires_grad_()


ONLY = ""


def report(name, call, flop=None, images=None):
    if not name.startswith(ONLY):
        return
    median, fastest = timed(call)
    rate = ""
    if flop:
        rate = f" [{flop / median / 1e9:.1f} GFLOP/s]"
    if images:
        rate = f" [{images / median:,.0f} images/s]"
    print(f"{name:24} median {median * 1e3:8.3f} ms{rate}, fastest {fastest * 1e3:8.3f} ms")


def backward_of_sum(output, tensors):
    for t in tensors:
        t.grad = None
    output.sum().backward()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--only", default="", help="run the workloads whose name starts so (W5)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    global ONLY
    ONLY = args.only
    torch.manual_seed(0)
    print(f"PyTorch {torch.__version__}, {torch.get_num_threads()} thread(s)")

    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    report("PEAK sgemm 1024", lambda: a @ b, flop=2 * 1024**3)

    x = torch.randn(32, 16, 28, 28, requires_grad=True)
    w, bias = fan_in_uniform((32, 16, 3, 3), 144), fan_in_uniform((32,), 144)
    with torch.no_grad():
        report("W1 conv fwd", lambda: F.conv2d(x, w, bias, padding=1), flop=231_211_008)
    report("W1 conv fwd+bwd", lambda: backward_of_sum(F.conv2d(x, w, bias, padding=1), [x, w, bias]),
           flop=693_633_024)

    x = torch.randn(64, 1, 56, 56, requires_grad=True)
    w, bias = fan_in_uniform((16, 1, 5, 5), 25), fan_in_uniform((16,), 25)
    with torch.no_grad():
        report("W2 conv 1ch fwd", lambda: F.conv2d(x, w, bias), flop=138_444_800)
    report("W2 conv 1ch fwd+bwd", lambda: backward_of_sum(F.conv2d(x, w, bias), [x, w, bias]),
           flop=415_334_400)

    x = torch.randn(64, 3136, requires_grad=True)
    w, bias = fan_in_uniform((128, 3136), 3136), fan_in_uniform((128,), 3136)
    with torch.no_grad():
        report("W3 dense fwd", lambda: F.linear(x, w, bias), flop=51_380_224)
    report("W3 dense fwd+bwd", lambda: backward_of_sum(F.linear(x, w, bias), [x, w, bias]),
           flop=154_140_672)

    x = torch.randn(32, 32, 28, 28, requires_grad=True)
    with torch.no_grad():
        report("W4 maxpool fwd", lambda: F.max_pool2d(x, 2, 2))
    report("W4 maxpool fwd+bwd", lambda: backward_of_sum(F.max_pool2d(x, 2, 2), [x]))

    images, labels = torch.randn(64, 1, 56, 56), torch.randint(0, 2, (64,))

    def sgd_step(params, loss):
        for p in params:
            p.grad = None
        loss.backward()
        with torch.no_grad():
            for p in params:
                p -= 0.01 * p.grad

    cnn = [fan_in_uniform((16, 1, 5, 5), 25), fan_in_uniform((16,), 25),
           fan_in_uniform((32, 16, 3, 3), 144), fan_in_uniform((32,), 144),
           fan_in_uniform((2, 32), 32), fan_in_uniform((2,), 32)]

    def cnn_step():
        h = F.max_pool2d(F.relu(F.conv2d(images, cnn[0], cnn[1])), 2, 2)
        h = torch.amax(F.relu(F.conv2d(h, cnn[2], cnn[3])), dim=(2, 3))
        sgd_step(cnn, F.cross_entropy(F.linear(h, cnn[4], cnn[5]), labels))

    report("W5 cnn step", cnn_step, images=64)

    fcn = [fan_in_uniform((128, 3136), 3136), fan_in_uniform((128,), 3136),
           fan_in_uniform((2, 128), 128), fan_in_uniform((2,), 128)]

    def fcn_step():
        h = F.relu(F.linear(images.flatten(1), fcn[0], fcn[1]))
        sgd_step(fcn, F.cross_entropy(F.linear(h, fcn[2], fcn[3]), labels))

    report("W6 fcn step", fcn_step, images=64)


if __name__ == "__main__":
    main()

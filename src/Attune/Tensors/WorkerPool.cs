namespace Attune.Tensors;

/// <summary>Work that splits into independent index ranges.</summary>
public interface IRangeJob
{
    void Execute(int start, int end);
}

/// <summary>
/// Persistent worker threads for the kernels: the calling thread and <c>threads − 1</c> workers
/// each take one contiguous, fixed share of [0, count), so a result never depends on timing and
/// every output element is computed by exactly one thread in a fixed order. Workers spin briefly
/// between jobs (a decode step issues hundreds of small jobs) and then sleep. Nothing is
/// allocated per call.
/// </summary>
public sealed class WorkerPool : IDisposable
{
    public static WorkerPool Shared { get; } = new(Environment.ProcessorCount);

    readonly Thread[] _workers;
    readonly ManualResetEventSlim _wake = new(false);
    IRangeJob? _job;
    int _count;
    int _threadsInJob;
    long _generation;
    int _pending;
    volatile bool _stopping;
    readonly object _runLock = new();

    public int Threads { get; }

    public WorkerPool(int threads)
    {
        Threads = Math.Max(1, threads);
        _workers = new Thread[Threads - 1];
        for (int i = 0; i < _workers.Length; i++)
        {
            int index = i + 1;
            _workers[i] = new Thread(() => WorkerLoop(index)) { IsBackground = true, Name = $"attune-worker-{index}" };
            _workers[i].Start();
        }
    }

    /// <summary>Runs <paramref name="job"/> over [0, count) on up to <paramref name="maxThreads"/> threads and waits.</summary>
    public void Run(IRangeJob job, int count, int maxThreads = int.MaxValue)
    {
        int threads = Math.Min(Math.Min(Threads, maxThreads), count);
        if (threads <= 1)
        {
            if (count > 0) job.Execute(0, count);
            return;
        }
        lock (_runLock)
        {
            _job = job;
            _count = count;
            _threadsInJob = threads;
            Volatile.Write(ref _pending, threads - 1);
            Interlocked.Increment(ref _generation);
            _wake.Set();
            job.Execute(0, Share(0, count, threads).End);
            var spin = new SpinWait();
            while (Volatile.Read(ref _pending) > 0) spin.SpinOnce(sleep1Threshold: -1);
            _job = null;
        }
    }

    sealed class RangeAction(Action<int, int> body) : IRangeJob
    {
        public void Execute(int start, int end) => body(start, end);
    }

    /// <summary>Runs <paramref name="body"/>(start, end) over shares of [0, count) — for work outside the hot
    /// decode path, where one small allocation per call does not matter.</summary>
    public void For(int count, Action<int, int> body) => Run(new RangeAction(body), count);

    static (int Start, int End) Share(int index, int count, int threads) =>
        ((int)((long)count * index / threads), (int)((long)count * (index + 1) / threads));

    void WorkerLoop(int index)
    {
        long seen = 0;
        while (!_stopping)
        {
            // Spin for the next job for a short while, then sleep on the event.
            var spin = new SpinWait();
            long gen;
            int spins = 0;
            while ((gen = Volatile.Read(ref _generation)) == seen && !_stopping)
            {
                if (++spins < 20_000) spin.SpinOnce(sleep1Threshold: -1);
                else
                {
                    _wake.Wait(50);
                    if (Volatile.Read(ref _generation) == seen) _wake.Reset();
                }
            }
            if (_stopping) return;
            seen = gen;
            if (index < _threadsInJob)
            {
                var (start, end) = Share(index, _count, _threadsInJob);
                try { _job!.Execute(start, end); }
                finally { Interlocked.Decrement(ref _pending); }
            }
        }
    }

    public void Dispose()
    {
        _stopping = true;
        _wake.Set();
        foreach (var w in _workers) w.Join();
    }
}

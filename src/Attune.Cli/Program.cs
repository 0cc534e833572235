using System.CommandLine;
using Attune.Cli.Commands;

namespace Attune.Cli;

/// <summary>
/// The <c>attune</c> command. Each command is a thin shell over a library call; this class only
/// wires them up and turns failures into exit codes: 0 success, 1 usage error, 2 bad input,
/// 3 internal failure.
/// </summary>
public static class Program
{
    public const int Success = 0, UsageError = 1, BadInput = 2, InternalError = 3;

    public static readonly Option<bool> Verbose = new("--verbose")
    {
        Description = "On failure, also print the stack trace",
        Recursive = true,
    };

    public static RootCommand Build()
    {
        var root = new RootCommand("Attune: measure and choose the trade-off between in-context learning and instruction following in small multilingual language models.")
        {
            Verbose,
            TokenizeCommands.Tokenize(),
            TokenizeCommands.Detokenize(),
            TemplateCommand.Build(),
            InspectCommand.Build(),
            ModelCommands.Init(),
            ConvertCommand.Build(),
            MergeCommand.Build(),
            TrainCommand.Build(),
            ModelCommands.Generate(),
            ModelCommands.Chat(),
            ModelCommands.Score(),
            ModelCommands.Perplexity(),
            ServeCommand.Build(),
            EvalCommand.Build(),
            ShiftCommand.Build(),
            SweepCommand.Build(),
            SweepCommand.Store(),
            ReportCommand.Build(),
            DemoCommand.Build(),
        };
        root.HelpName = "attune";
        return root;
    }

    public static int Main(string[] args) => Run(args, Console.In, Console.Out, Console.Error);

    /// <summary>Runs the command line with the given streams (tests call this in-process).</summary>
    public static int Run(string[] args, TextReader stdin, TextWriter stdout, TextWriter stderr)
    {
        var root = Build();
        var parse = root.Parse(args);
        var io = new CliIO(stdin, stdout, stderr);
        CliIO.Current = io;
        try
        {
            return parse.Invoke(new InvocationConfiguration { Output = stdout, Error = stderr, EnableDefaultExceptionHandler = false });
        }
        catch (AttuneException e)
        {
            stderr.WriteLine($"error: {e.Message}");
            if (parse.GetValue(Verbose)) stderr.WriteLine(e);
            return BadInput;
        }
        catch (Exception e)
        {
            stderr.WriteLine($"internal error: {e.GetType().Name}: {e.Message} (please report this; --verbose shows where)");
            if (parse.GetValue(Verbose)) stderr.WriteLine(e);
            return InternalError;
        }
        finally
        {
            stdout.Flush();
            CliIO.Current = null;
        }
    }
}

/// <summary>The streams a command reads and writes, so that tests can run commands in-process.</summary>
public sealed record CliIO(TextReader In, TextWriter Out, TextWriter Error)
{
    [ThreadStatic] static CliIO? t_current;

    public static CliIO? Current { get => t_current; set => t_current = value; }

    public static CliIO Get() => t_current ?? new CliIO(Console.In, Console.Out, Console.Error);
}

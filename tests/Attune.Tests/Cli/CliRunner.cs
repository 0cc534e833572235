using Attune.Cli;

namespace Attune.Tests.Cli;

/// <summary>Runs the <c>attune</c> command in-process with captured streams.</summary>
public static class CliRunner
{
    public static (int Code, string Out, string Err) Run(string stdin, params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = Program.Run(args, new StringReader(stdin), stdout, stderr);
        return (code, stdout.ToString(), stderr.ToString());
    }
}

namespace AppHost.Tests.Resources;

/// <summary>
/// A fresh local state directory (the AppHost's PostgreSQL data directory or SQLite file) for one
/// test AppHost, passed as <c>Postgres:StateDirectory</c>, so tests never write into the developer's
/// own ledger under local app data. Readable by the <c>postgres</c> user when the tests run as root.
/// </summary>
internal sealed class TestStateDirectory : IDisposable
{
    public TestStateDirectory()
    {
        if (Environment.UserName == "root")
        {
            System.Diagnostics.Process.Start("chmod", ["755", Path])!.WaitForExit();
        }
    }

    public string Path { get; } = Directory.CreateTempSubdirectory("apphost-state-").FullName;

    /// <summary>The AppHost argument that points it here.</summary>
    public string Argument => $"Postgres:StateDirectory={Path}";

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
            // a process of the stopped AppHost still closing a file: left in the temp folder
        }
        catch (UnauthorizedAccessException)
        {
            // files the postgres user created with its own permissions: left in the temp folder
        }
    }
}

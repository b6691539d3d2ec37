// End-to-end tests start real servers and push thousands of messages; on two cores they run one at a time.
[assembly: CollectionBehavior(DisableTestParallelization = true)]

// Postfix, smtp-sink and /proc: these tests run on Linux only.
[assembly: System.Runtime.Versioning.SupportedOSPlatform("linux")]

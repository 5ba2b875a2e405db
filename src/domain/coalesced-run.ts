/**
 * Runs an async task on request, one run at a time. A request made while a run is in progress
 * makes the task run once more after it (any number of such requests coalesce into that one), so
 * every request is followed by a run that started after it: what the task reads is never older
 * than the request. The observer's and the change feed's reads of the activity log, the stream
 * server's reads of changed relays, each fleet hub's work and each dashboard activity stream work
 * this way.
 */
export class CoalescedRun {
  private running: Promise<void> | null = null;
  private again = false;

  constructor(
    private readonly options: {
      task: () => Promise<void>;
      /**
       * A run that threw; the task is not run again until the next request (requests made during
       * the failed run included). Called once the run is over, so it may request another.
       */
      onError: (err: unknown) => void;
      /** Once true, requests are ignored and no further run starts. */
      stopped: () => boolean;
    },
  ) {}

  /** The run in progress (including its follow-ups), or null. */
  get current(): Promise<void> | null {
    return this.running;
  }

  request(): void {
    if (this.options.stopped()) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.run();
  }

  private async run(): Promise<void> {
    let failed = false;
    let error: unknown;
    try {
      do {
        this.again = false;
        await this.options.task();
      } while (this.again && !this.options.stopped());
    } catch (err) {
      failed = true;
      error = err;
    } finally {
      this.running = null;
    }
    if (failed) this.options.onError(error);
  }
}

import type { Command } from 'commander';
import { loadConfig, type ConfigFlags } from '../../config/load.js';
import { startService, type ServiceRole } from '../../service/service.js';
import { serviceLogger } from '../logger.js';

const ROLES: { readonly role: ServiceRole; readonly command: string; readonly description: string }[] = [
  {
    role: 'all',
    command: 'start',
    description: 'run the HTTP gateway and the workers in one process (embedded SQLite store by default)',
  },
  {
    role: 'gateway',
    command: 'gateway',
    description: 'run only the HTTP gateway (ingest and operator API); workers run elsewhere',
  },
  {
    role: 'worker',
    command: 'worker',
    description: 'run only the workers (deliveries), with /health, /ready and /metrics on --port',
  },
];

/** `steadfast start`, `steadfast gateway` and `steadfast worker`: one process until SIGTERM/SIGINT. */
export function registerStart(program: Command): void {
  for (const { role, command, description } of ROLES) {
    program
      .command(command)
      .description(description)
      .option('--port <port>', 'HTTP port (default 3000, env STEADFAST_PORT)')
      .option('--host <host>', 'interface to listen on (default 0.0.0.0)')
      .option('--data <dir>', 'data directory (default ./data, env STEADFAST_DATA_DIR)')
      .option('--config <path>', 'config file (default steadfast.config.json, env STEADFAST_CONFIG)')
      .option('--log-level <level>', 'fatal|error|warn|info|debug|trace|silent')
      .action((flags: ConfigFlags) => run(role, flags));
  }
}

async function run(role: ServiceRole, flags: ConfigFlags): Promise<void> {
  const config = loadConfig({ flags });
  const logger = serviceLogger(config.logLevel);
  let service: Awaited<ReturnType<typeof startService>>;
  try {
    service = await startService(config, logger, { role });
  } catch (error) {
    // startService logged the cause; the process must not look healthy.
    logger.fatal({ err: error }, `steadfast ${role === 'all' ? 'start' : role} could not start`);
    process.exitCode = 1;
    return;
  }
  logger.info(
    {
      role,
      url: service.url,
      backend: service.backend,
      dataDir: config.dataDir,
      destinations: config.destinations.map((d) => d.name),
    },
    'steadfast is running',
  );
  if (role !== 'worker' && service.generated.hmacSecret) {
    console.log(
      `\nNo signing secret was configured: one was generated into ${service.generated.hmacSecret}.\n` +
        `Send a signed event with:\n  npx steadfast send --type user.created --payload '{"id":1}' --url ${service.url}\n`,
    );
  }
  if (role !== 'worker' && service.generated.adminToken) {
    console.log(`The admin token (dead-letter routes) was generated into ${service.generated.adminToken}.\n`);
  }
  let signals = 0;
  const shutdown = (signal: string) => {
    signals += 1;
    if (signals > 1) {
      logger.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    logger.info({ signal }, 'shutting down: no new events, draining deliveries');
    service.close().then(
      () => {
        logger.info('stopped cleanly');
        process.exitCode = 0;
      },
      (error: unknown) => {
        logger.error({ err: error }, 'shutdown failed');
        process.exitCode = 1;
      },
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

#!/usr/bin/env node
import { Command } from 'commander';
import { auditCommand } from './commands/auditCommand.js';
import { demoCommand } from './commands/demoCommand.js';
import { emulateCommand } from './commands/emulateCommand.js';
import { frontierCommand } from './commands/frontierCommand.js';
import { stage1Command } from './commands/stage1Command.js';
import { evalCommand } from './commands/evalCommand.js';
import { pluginCommand } from './commands/pluginCommand.js';
import { reportCommand } from './commands/reportCommand.js';
import { tuneCommand } from './commands/tuneCommand.js';

const program = new Command('scaleot')
  .description('ScaleOT offsite-tuning: the model owner keeps the weights, data owners keep their data.')
  .version('0.1.0')
  .showHelpAfterError()
  .addCommand(evalCommand())
  .addCommand(emulateCommand())
  .addCommand(tuneCommand())
  .addCommand(pluginCommand())
  .addCommand(reportCommand())
  .addCommand(auditCommand())
  .addCommand(stage1Command())
  .addCommand(frontierCommand())
  .addCommand(demoCommand());

await program.parseAsync(process.argv);

export { barChart, lineChart, scatterChart, htmlReport, layerImportanceChart, scoreTrajectoryChart, esc, type ScatterPoint } from './charts.js';

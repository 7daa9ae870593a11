package platform

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsapplicationautoscaling"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatchactions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/jsii-runtime-go"

	"github.com/scrapeplatform/platform/infra/stage"
)

// queueMetric is one of the queue-depth Lambda's metrics (dimensions Stage, Queue).
func queueMetric(s stage.Settings, name, statistic string) awscloudwatch.Metric {
	return awscloudwatch.NewMetric(&awscloudwatch.MetricProps{
		Namespace:     jsii.String(MetricNamespace),
		MetricName:    jsii.String(name),
		DimensionsMap: &map[string]*string{"Stage": jsii.String(s.Name), "Queue": jsii.String(TaskQueue)},
		Statistic:     jsii.String(statistic),
		Period:        awscdk.Duration_Minutes(jsii.Number(1)),
	})
}

// brokerMetric is one of the queue-depth Lambda's broker metrics (dimension Stage).
func brokerMetric(s stage.Settings, name, statistic string) awscloudwatch.Metric {
	return awscloudwatch.NewMetric(&awscloudwatch.MetricProps{
		Namespace:     jsii.String(MetricNamespace),
		MetricName:    jsii.String(name),
		DimensionsMap: &map[string]*string{"Stage": jsii.String(s.Name)},
		Statistic:     jsii.String(statistic),
		Period:        awscdk.Duration_Minutes(jsii.Number(1)),
	})
}

// ScaleFromZeroExpression is the metric math of the scale-from-zero alarm: 1 when the service wants no task
// while tasks wait or have just expired into the dead-letter queue.
const ScaleFromZeroExpression = "IF(desired < 1 AND (ready >= 1 OR DIFF(dead) > 0), 1, 0)"

// newScaling scales the worker service on the workers' real capacity:
//
//   - target tracking holds CapacityUtilization ((ready + unacked) / the sum of the workers' consumer
//     prefetch, published every minute by the queue-depth Lambda) at the stage's target, scaling out fast
//     and in slowly. A worker's prefetch is its admission capacity, which follows its measured CPU, memory
//     and event-loop lag (worker/README.md, "Admission by load"), so a fleet of I/O-bound workers taking
//     hundreds of scrapes each scales on what they really take in, not on a fixed number per task;
//   - target tracking cannot leave zero tasks (its formula multiplies the current capacity), so a step
//     policy adds a task whenever tasks wait (or expired waiting) and the service wants no task at all.
func newScaling(st awscdk.Stack, s stage.Settings, w *workers, obs *alerting) {
	target := awsapplicationautoscaling.NewScalableTarget(st, jsii.String("WorkerScaling"), &awsapplicationautoscaling.ScalableTargetProps{
		ServiceNamespace:  awsapplicationautoscaling.ServiceNamespace_ECS,
		ScalableDimension: jsii.String("ecs:service:DesiredCount"),
		ResourceId: awscdk.Fn_Join(jsii.String("/"), &[]*string{
			jsii.String("service"), w.cluster.ClusterName(), w.service.ServiceName(),
		}),
		MinCapacity: jsii.Number(s.Workers.MinTasks),
		MaxCapacity: jsii.Number(s.Workers.MaxTasks),
		// Application Auto Scaling's service-linked role for ECS, as the ECS L2 uses.
		Role: awsiam.Role_FromRoleArn(st, jsii.String("EcsScalingRole"), awscdk.Arn_Format(&awscdk.ArnComponents{
			Service:      jsii.String("iam"),
			Region:       jsii.String(""),
			Resource:     jsii.String("role/aws-service-role/ecs.application-autoscaling.amazonaws.com"),
			ResourceName: jsii.String("AWSServiceRoleForApplicationAutoScaling_ECSService"),
		}, st), nil),
	})
	target.Node().AddDependency(w.service)

	target.ScaleToTrackMetric(jsii.String("CapacityUtilizationTracking"), &awsapplicationautoscaling.BasicTargetTrackingScalingPolicyProps{
		TargetValue:      jsii.Number(s.Workers.UtilizationTarget()),
		CustomMetric:     queueMetric(s, "CapacityUtilization", "Average"),
		ScaleOutCooldown: awscdk.Duration_Seconds(jsii.Number(60)),
		// Slow scale-in: a task that is stopped drains first (stopTimeout), and load comes in bursts.
		ScaleInCooldown: awscdk.Duration_Seconds(jsii.Number(300)),
	})

	fromZero := awsapplicationautoscaling.NewStepScalingAction(st, jsii.String("ScaleFromZero"), &awsapplicationautoscaling.StepScalingActionProps{
		ScalingTarget:         target,
		AdjustmentType:        awsapplicationautoscaling.AdjustmentType_CHANGE_IN_CAPACITY,
		MetricAggregationType: awsapplicationautoscaling.MetricAggregationType_MAXIMUM,
		Cooldown:              awscdk.Duration_Seconds(jsii.Number(120)),
	})
	fromZero.AddAdjustment(&awsapplicationautoscaling.AdjustmentTier{Adjustment: jsii.Number(1), LowerBound: jsii.Number(0)})
	// A task waits at most its caller's deadline (~26 s, the message's expiration) and then expires into
	// the dead-letter queue, so a once-a-minute sample of the ready count can miss a lone request; the
	// dead-letter queue keeps the evidence, and its growth counts as demand too.
	waiting := awscloudwatch.NewAlarm(st, jsii.String("BacklogWithoutWorkers"), &awscloudwatch.AlarmProps{
		AlarmDescription: jsii.String("Tasks wait (or expired waiting) and the worker service wants no task: the step policy starts one (target tracking cannot scale from zero)."),
		Metric: awscloudwatch.NewMathExpression(&awscloudwatch.MathExpressionProps{
			Expression: jsii.String(ScaleFromZeroExpression),
			UsingMetrics: &map[string]awscloudwatch.IMetric{
				"desired": queueMetric(s, "DesiredTasks", "Maximum"),
				"ready":   queueMetric(s, "ReadyMessages", "Maximum"),
				"dead":    queueMetric(s, "DeadLetterMessages", "Maximum"),
			},
			Label:  jsii.String("backlog with no task wanted"),
			Period: awscdk.Duration_Minutes(jsii.Number(1)),
		}),
		Threshold:          jsii.Number(1),
		ComparisonOperator: awscloudwatch.ComparisonOperator_GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
		EvaluationPeriods:  jsii.Number(1),
		TreatMissingData:   awscloudwatch.TreatMissingData_NOT_BREACHING,
	})
	waiting.AddAlarmAction(awscloudwatchactions.NewApplicationScalingAction(fromZero))
	obs.scaleFromZero = waiting
}

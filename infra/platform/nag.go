package platform

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"
)

// Check applies cdk-nag's AwsSolutions pack to everything in scope. Its findings become error
// annotations, which fail `cdk synth` and `cdk deploy` and which the tests count; an accepted finding
// is suppressed next to its resource with the reason (suppressions are written into the template's
// metadata, so reviewers see them).
func Check(scope constructs.IConstruct) {
	awscdk.Aspects_Of(scope).Add(cdknag.NewAwsSolutionsChecks(&cdknag.NagPackProps{Verbose: jsii.Bool(true)}), nil)
}

// suppress records accepted findings on c (and its children) with their reasons.
func suppress(c constructs.IConstruct, findings ...*cdknag.NagPackSuppression) {
	cdknag.NagSuppressions_AddResourceSuppressions(c, &findings, jsii.Bool(true))
}

// finding is one accepted cdk-nag finding, optionally limited to the findings' specific targets:
// strings ("Policy::…", "Action::…", "Resource::…", or rule ids for CdkNagValidationFailure) or matches
// (for targets that embed a generated logical id).
func finding(id, reason string, appliesTo ...any) *cdknag.NagPackSuppression {
	f := &cdknag.NagPackSuppression{Id: jsii.String(id), Reason: jsii.String(reason)}
	if len(appliesTo) > 0 {
		targets := make([]interface{}, 0, len(appliesTo))
		for _, a := range appliesTo {
			if s, ok := a.(string); ok {
				a = jsii.String(s)
			}
			targets = append(targets, a)
		}
		f.AppliesTo = &targets
	}
	return f
}

// matching is an appliesTo target given as a regular expression (JavaScript syntax, /…/).
func matching(re string) *cdknag.RegexAppliesTo {
	return &cdknag.RegexAppliesTo{Regex: jsii.String(re)}
}

const (
	lambdaBasicPolicy = "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
	lambdaVPCPolicy   = "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"
)

// suppressLambdaRole accepts the AWS managed policies CDK gives a VPC Lambda's role.
func suppressLambdaRole(fn awslambda.Function, who string) {
	suppress(fn.Role(), finding("AwsSolutions-IAM4",
		"The execution role of "+who+" uses AWSLambdaBasicExecutionRole (write its own log group) and "+
			"AWSLambdaVPCAccessExecutionRole (create its ENIs in the VPC); both are the AWS-maintained minimum for a VPC Lambda, and "+
			"the ENI actions do not support resource-level permissions.",
		lambdaBasicPolicy, lambdaVPCPolicy))
}
